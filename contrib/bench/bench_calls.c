/* bench_calls: times a loop of one libc call made from a benchmark library, in ns per call. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_loops.h"
#include "bench_stats.h"

#define BENCH_CALLS_MAX_REPEATS 1000
#define BENCH_CALLS_WARM_UP 1000

static void bench_calls_usage(FILE *out)
{
	fputs("usage: bench_calls [-r REPEATS] getppid|strlen|bind|write COUNT\n"
	      "Runs a warm-up, then REPEATS (default 5) timed loops of COUNT calls, and prints the\n"
	      "median time per call and whether the audit module is in this process:\n"
	      "`ns_per_call=N libviaudit=mapped|absent`. getppid, strlen and bind are called from\n"
	      "libbench_unselected.so, write (1 byte to /dev/null) from libbench_selected.so.\n",
	      out);
}

/* Runs one loop of COUNT calls of MEASURE; returns the number of calls that misbehaved. */
static long bench_calls_run_loop(const char *measure, int null_fd, long count)
{
	if (strcmp(measure, "getppid") == 0)
		return bench_unselected_getppid(count);
	if (strcmp(measure, "strlen") == 0)
		return bench_unselected_strlen(count);
	if (strcmp(measure, "bind") == 0)
		return bench_unselected_bind(count);
	return bench_selected_write(null_fd, count);
}

/* Whether the audit module is mapped into this process: the proof that a run was audited. */
static const char *bench_calls_audit_state(void)
{
	char line[4096];
	const char *state = "absent";
	FILE *maps = fopen("/proc/self/maps", "re");

	if (maps == NULL)
		return "unknown";
	while (fgets(line, sizeof(line), maps) != NULL)
		if (strstr(line, "/libviaudit.so") != NULL)
			state = "mapped";
	fclose(maps);
	return state;
}

static double bench_calls_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
}

int main(int argc, char **argv)
{
	static double per_call_ns[BENCH_CALLS_MAX_REPEATS];
	long repeats = 5, count;
	const char *measure;
	char *end;
	int option, null_fd;

	while ((option = getopt(argc, argv, "hr:")) != -1) {
		switch (option) {
		case 'r':
			repeats = strtol(optarg, &end, 10);
			if (*end != '\0' || repeats < 1 || repeats > BENCH_CALLS_MAX_REPEATS) {
				fprintf(stderr, "bench_calls: -r takes 1 to %d\n", BENCH_CALLS_MAX_REPEATS);
				return 2;
			}
			break;
		case 'h':
			bench_calls_usage(stdout);
			return 0;
		default:
			bench_calls_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		bench_calls_usage(stderr);
		return 2;
	}
	measure = argv[optind];
	if (strcmp(measure, "getppid") != 0 && strcmp(measure, "strlen") != 0 &&
	    strcmp(measure, "bind") != 0 && strcmp(measure, "write") != 0) {
		fprintf(stderr, "bench_calls: unknown measure '%s'\n", measure);
		return 2;
	}
	count = strtol(argv[optind + 1], &end, 10);
	if (*end != '\0' || count < 1) {
		fprintf(stderr, "bench_calls: COUNT must be a positive number\n");
		return 2;
	}

	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		perror("bench_calls: /dev/null");
		return 1;
	}
	/* The warm-up binds the PLT slot (lazily bound objects) and warms the caches. */
	if (bench_calls_run_loop(measure, null_fd, BENCH_CALLS_WARM_UP) != 0) {
		fprintf(stderr, "bench_calls: %s did not return what it should\n", measure);
		return 1;
	}
	for (long i = 0; i < repeats; i++) {
		double start = bench_calls_now_ns();
		long wrong = bench_calls_run_loop(measure, null_fd, count);

		per_call_ns[i] = (bench_calls_now_ns() - start) / (double)count;
		if (wrong != 0) {
			fprintf(stderr, "bench_calls: %ld of %ld %s calls did not return what they should\n",
				wrong, count, measure);
			return 1;
		}
	}
	printf("ns_per_call=%.3f libviaudit=%s\n", bench_stats_median(per_call_ns, (size_t)repeats),
	       bench_calls_audit_state());
	return 0;
}
