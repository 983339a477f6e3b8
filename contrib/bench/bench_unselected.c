/* libbench_unselected.so: call loops from an object the benchmark policy does not select. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_loops.h"

long bench_unselected_getppid(long count)
{
	pid_t parent = getppid();
	long wrong = 0;

	for (long i = 0; i < count; i++)
		wrong += getppid() != parent;
	return wrong;
}

long bench_unselected_strlen(long count)
{
	static const char text[] = "viaudit";
	/* Read anew each time round, so that the pure strlen() is not hoisted out of the loop. */
	const char *volatile pointer = text;
	long wrong = 0;

	for (long i = 0; i < count; i++)
		wrong += strlen(pointer) != sizeof(text) - 1;
	return wrong;
}

long bench_unselected_bind(long count)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long wrong = 0;

	for (long i = 0; i < count; i++)
		wrong += bind(-1, (const struct sockaddr *)&address, sizeof(address)) != -1 || errno != EBADF;
	return wrong;
}
