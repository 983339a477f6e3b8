/* bench_spawn: times the start-up of a program run under several environments, alternately. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_stats.h"

#define BENCH_SPAWN_MAX_MODES 4
#define BENCH_SPAWN_MAX_SETTINGS 8
#define BENCH_SPAWN_MAX_SPAWNS 100000

extern char **environ;

/* One environment the program is started under: the caller's, plus some settings. */
struct bench_spawn_mode {
	const char *name;
	const char *settings[BENCH_SPAWN_MAX_SETTINGS];
	int setting_count;
	char **environment;
	double *spawn_ns;  /* SPAWNS samples, in the order they were taken */
	double *round_ns;  /* per round: the median of its samples */
};

static void bench_spawn_usage(FILE *out)
{
	fputs("usage: bench_spawn [-n SPAWNS] [-r ROUNDS] -m NAME [-e VAR=VALUE]... [-m NAME ...] PROGRAM\n"
	      "Starts PROGRAM (no arguments) SPAWNS times (default 300) under each mode, taking the\n"
	      "modes in turn (the first one in a different place each time) so that drift hits them\n"
	      "alike, and times each start from posix_spawn to waitpid. A mode's environment is the\n"
	      "caller's without LD_AUDIT and VIAUDIT_*, plus its -e settings. Prints per mode:\n"
	      "  mode=NAME spawns=N median_ns=.. mean_ns=.. round_median_ns=.. diff_round_median_ns=..\n"
	      "where round_median_ns is the median of the ROUNDS (default 10) per-round medians and\n"
	      "diff_round_median_ns the median over rounds of this mode's minus the first mode's.\n",
	      out);
}

/* Whether NAME=VALUE is a setting a mode must not inherit from the caller. */
static int bench_spawn_is_stripped(const char *entry)
{
	return strncmp(entry, "LD_AUDIT=", 9) == 0 || strncmp(entry, "VIAUDIT_", 8) == 0;
}

/* Builds MODE's environment; returns 0, or -1 when out of memory. */
static int bench_spawn_build_environment(struct bench_spawn_mode *mode)
{
	size_t count = 0, used = 0;

	while (environ[count] != NULL)
		count++;
	mode->environment = calloc(count + (size_t)mode->setting_count + 1, sizeof(char *));
	if (mode->environment == NULL)
		return -1;
	for (size_t i = 0; i < count; i++)
		if (!bench_spawn_is_stripped(environ[i]))
			mode->environment[used++] = environ[i];
	for (int i = 0; i < mode->setting_count; i++)
		mode->environment[used++] = (char *)mode->settings[i];
	return 0;
}

static double bench_spawn_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
}

/* Starts PROGRAM under MODE and waits for it; returns the wall time in ns, or -1 on failure. */
static double bench_spawn_time_one(const char *program, const struct bench_spawn_mode *mode)
{
	char *argv[] = { (char *)program, NULL };
	double start = bench_spawn_now_ns();
	pid_t pid;
	int status, error;

	error = posix_spawn(&pid, program, NULL, NULL, argv, mode->environment);
	if (error != 0) {
		fprintf(stderr, "bench_spawn: cannot start %s: %s\n", program, strerror(error));
		return -1;
	}
	if (waitpid(pid, &status, 0) != pid) {
		perror("bench_spawn: waitpid");
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_spawn: %s under mode %s did not exit with status 0 (wait status %d)\n",
			program, mode->name, status);
		return -1;
	}
	return bench_spawn_now_ns() - start;
}

/* Parses a count option in [1, MAX]; returns it, or -1 after printing why. */
static long bench_spawn_parse_count(const char *text, long max)
{
	char *end;
	long value = strtol(text, &end, 10);

	if (*end != '\0' || value < 1 || value > max) {
		fprintf(stderr, "bench_spawn: '%s' is not a count from 1 to %ld\n", text, max);
		return -1;
	}
	return value;
}

int main(int argc, char **argv)
{
	struct bench_spawn_mode modes[BENCH_SPAWN_MAX_MODES] = { 0 };
	long spawns = 300, rounds = 10;
	int mode_count = 0, option;
	const char *program;
	double *scratch;

	while ((option = getopt(argc, argv, "+hn:r:m:e:")) != -1) {
		switch (option) {
		case 'n':
			if ((spawns = bench_spawn_parse_count(optarg, BENCH_SPAWN_MAX_SPAWNS)) < 0)
				return 2;
			break;
		case 'r':
			if ((rounds = bench_spawn_parse_count(optarg, BENCH_SPAWN_MAX_SPAWNS)) < 0)
				return 2;
			break;
		case 'm':
			if (mode_count == BENCH_SPAWN_MAX_MODES) {
				fprintf(stderr, "bench_spawn: at most %d modes\n", BENCH_SPAWN_MAX_MODES);
				return 2;
			}
			modes[mode_count++].name = optarg;
			break;
		case 'e':
			if (mode_count == 0 || strchr(optarg, '=') == NULL ||
			    modes[mode_count - 1].setting_count == BENCH_SPAWN_MAX_SETTINGS) {
				fprintf(stderr, "bench_spawn: -e VAR=VALUE follows a -m, at most %d times\n",
					BENCH_SPAWN_MAX_SETTINGS);
				return 2;
			}
			modes[mode_count - 1].settings[modes[mode_count - 1].setting_count++] = optarg;
			break;
		case 'h':
			bench_spawn_usage(stdout);
			return 0;
		default:
			bench_spawn_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || mode_count == 0 || rounds > spawns) {
		bench_spawn_usage(stderr);
		return 2;
	}
	program = argv[optind];

	scratch = calloc((size_t)spawns, sizeof(double));
	if (scratch == NULL)
		return 1;
	for (int m = 0; m < mode_count; m++) {
		modes[m].spawn_ns = calloc((size_t)spawns, sizeof(double));
		modes[m].round_ns = calloc((size_t)rounds, sizeof(double));
		if (modes[m].spawn_ns == NULL || modes[m].round_ns == NULL ||
		    bench_spawn_build_environment(&modes[m]) != 0)
			return 1;
		/* One untimed start per mode brings the files into the page cache. */
		if (bench_spawn_time_one(program, &modes[m]) < 0)
			return 1;
	}

	for (long i = 0; i < spawns; i++) {
		for (int k = 0; k < mode_count; k++) {
			int m = (int)((i + k) % mode_count);

			modes[m].spawn_ns[i] = bench_spawn_time_one(program, &modes[m]);
			if (modes[m].spawn_ns[i] < 0)
				return 1;
		}
	}

	for (int m = 0; m < mode_count; m++) {
		for (long r = 0; r < rounds; r++) {
			long first = r * spawns / rounds, last = (r + 1) * spawns / rounds;

			memcpy(scratch, modes[m].spawn_ns + first, (size_t)(last - first) * sizeof(double));
			modes[m].round_ns[r] = bench_stats_median(scratch, (size_t)(last - first));
		}
	}
	for (int m = 0; m < mode_count; m++) {
		double mean = bench_stats_mean(modes[m].spawn_ns, (size_t)spawns);
		double round_median, median, difference;

		for (long r = 0; r < rounds; r++)
			scratch[r] = modes[m].round_ns[r] - modes[0].round_ns[r];
		difference = bench_stats_median(scratch, (size_t)rounds);
		memcpy(scratch, modes[m].round_ns, (size_t)rounds * sizeof(double));
		round_median = bench_stats_median(scratch, (size_t)rounds);
		memcpy(scratch, modes[m].spawn_ns, (size_t)spawns * sizeof(double));
		median = bench_stats_median(scratch, (size_t)spawns);
		printf("mode=%s spawns=%ld median_ns=%.0f mean_ns=%.0f round_median_ns=%.0f "
		       "diff_round_median_ns=%.0f\n",
		       modes[m].name, spawns, median, mean, round_median, difference);
	}
	for (int m = 0; m < mode_count; m++) {
		free(modes[m].environment);
		free(modes[m].spawn_ns);
		free(modes[m].round_ns);
	}
	free(scratch);
	return 0;
}
