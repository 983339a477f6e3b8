/* The driver of fork_sched: runs one schedule with its three processes, checks what they report, and says whether it was right. */
#ifndef VI_TESTS_SCHED_DRIVER_H
#define VI_TESTS_SCHED_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "sched_plan.h"

#define SCHED_DEFAULT_STALL_MS 3000

struct sched_options {
	uint64_t first_seed, runs;
	enum sched_victim victim;
	int stall_ms;          /* a process that moves no byte this long fails */
	uint64_t time_limit_s; /* 0: none */
	uint64_t max_failures; /* 0: none */
	bool verbose;
};

/*
 * Runs PLAN: forks the server and the peer (the server forks the child), drives them turn by
 * turn, and prints the plan, "seed N: ok|FAIL conn=..." and each failure. The driver must be
 * a child subreaper (an orphaned child comes to it). Returns true when every check passed.
 */
bool sched_run_plan(const struct sched_plan *plan, const struct sched_options *options);

#endif
