/* trace_prog PORT WHO...: makes the trace test calls from each WHO in turn (main, a, b, now, noplt). */
#include "trace_client.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	static const struct {
		const char *who;
		int (*run)(const char *port_text);
	} callers[] = {
		{ "a", trace_a_run },
		{ "b", trace_b_run },
		{ "now", trace_now_run },
		{ "noplt", trace_noplt_run },
	};
	int failures = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: trace_prog PORT main|a|b|now|noplt...\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		int result = -1;
		if (strcmp(argv[i], "main") == 0) {
			result = trace_client_run("main", argv[1]);
		} else {
			size_t k;
			for (k = 0; k < sizeof(callers) / sizeof(callers[0]); k++)
				if (strcmp(argv[i], callers[k].who) == 0)
					break;
			if (k == sizeof(callers) / sizeof(callers[0])) {
				fprintf(stderr, "trace_prog: unknown caller '%s'\n", argv[i]);
				return 2;
			}
			result = callers[k].run(argv[1]);
		}
		printf("%s %s\n", argv[i], result == 0 ? "ok" : "FAILED");
		fflush(stdout);
		failures += result != 0;
	}
	return failures == 0 ? 0 : 1;
}
