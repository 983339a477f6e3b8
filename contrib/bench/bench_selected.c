/* libbench_selected.so: call loops from an object the benchmark policy selects. */
#include <unistd.h>

#include "bench_loops.h"

long bench_selected_write(int fd, long count)
{
	static const char byte = 'x';
	long wrong = 0;

	for (long i = 0; i < count; i++)
		wrong += write(fd, &byte, 1) != 1;
	return wrong;
}
