/* route_main PORT: echo round trips to 127.0.0.1:PORT from the executable, three linked libraries and one loaded with dlopen(). */
#include "via_client.h"

#include <dlfcn.h>
#include <stdio.h>

/* Loads libvia_four.so by its bare soname, found through this executable's RUNPATH $ORIGIN. */
static int route_main_four(const char *port_text)
{
	via_round_trip_fn round_trip;
	void *handle = dlopen("libvia_four.so", RTLD_NOW | RTLD_LOCAL);

	if (handle == NULL) {
		fprintf(stderr, "route_main: dlopen libvia_four.so: %s\n", dlerror());
		return -1;
	}
	/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
	*(void **)&round_trip = dlsym(handle, "via_four_round_trip");
	if (round_trip == NULL) {
		fprintf(stderr, "route_main: dlsym via_four_round_trip: %s\n", dlerror());
		return -1;
	}
	return round_trip(port_text);
}

int main(int argc, char **argv)
{
	int failures = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: route_main PORT\n");
		return 2;
	}
	const struct {
		const char *name;
		int (*round_trip)(const char *port_text);
	} callers[] = {
		{ "main", NULL },
		{ "one", via_one_round_trip },
		{ "two", via_two_round_trip },
		{ "three", via_three_round_trip },
		{ "four", route_main_four },
	};

	for (size_t i = 0; i < sizeof(callers) / sizeof(callers[0]); i++) {
		int result = callers[i].round_trip != NULL
				     ? callers[i].round_trip(argv[1])
				     : via_client_round_trip("main", argv[1], NULL);

		printf("%s %s\n", callers[i].name, result == 0 ? "ok" : "FAILED");
		fflush(stdout);
		failures += result != 0;
	}
	return failures == 0 ? 0 : 1;
}
