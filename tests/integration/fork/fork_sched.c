/* fork_sched: seeded, reproducible schedules of one connection whose server forks while bytes are in flight both ways, the parent and child then owning it by turns; every byte must arrive once, in order. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "fault_util.h"
#include "fork_util.h"
#include "sched_driver.h"
#include "sched_plan.h"

static void fork_sched_usage(FILE *out)
{
	fprintf(out,
		"usage: fork_sched [OPTIONS] SEED\n"
		"       fork_sched [OPTIONS] --runs N [--first-seed S] [--time-limit SEC] [--max-failures K]\n"
		"  Runs the schedule of SEED (or N schedules from seed S, default 1): one connection over\n"
		"  127.0.0.1 between a peer and a server that moves bytes both ways, forks while bytes are\n"
		"  in flight both ways (0 .. 2 MiB sent, up to 768 KiB left unread by the peer, up to 2 MiB\n"
		"  more waiting in the peer's writes), and then hands the connection between parent and\n"
		"  child by turns, one owner at a time: the owner touches the socket first by read(),\n"
		"  write() or poll(), after a delay, moves its share of both streams, and the offsets it\n"
		"  reached go to the next owner over the driver's pipes. The process that does not own\n"
		"  the last turn keeps its copy, closes it, exits or is SIGKILLed, before or during the\n"
		"  next owner's first touch. Every byte of both streams is checked at its offset by\n"
		"  whoever receives it: each must arrive exactly once, in order. Each process's close\n"
		"  must bring its mappings and fds of " FORK_MEMFD_NAME " back to what it had before\n"
		"  the connection. With nothing to move, the peer waits for its socket to become\n"
		"  readable, or leaves it alone (\"idle peer polls\" or \"away\" in the schedule).\n"
		"  Prints the schedule of each seed, then \"seed N: ok\" or \"seed N: FAIL\" and why.\n"
		"  OPTIONS:\n"
		"    --kill parent|child|peer  the child owns the last turn, and the parent, the child or\n"
		"                   the peer is SIGKILLed during the child's go (the parent: after its\n"
		"                   last turn). No process may hang; the survivors' streams must be\n"
		"                   right up to where they end, and end by EOF, ECONNRESET or EPIPE.\n"
		"    --stall-ms MS  a process that moves no byte for MS ms fails (default %d)\n"
		"    --verbose      print what each process reported\n"
		"    --time-limit SEC  start no run after SEC seconds (the runs left count as failed)\n"
		"    --max-failures K  stop after K failed runs\n"
		"  Exit 0 when every run was right, 1 when one was not, 2 on bad usage.\n",
		SCHED_DEFAULT_STALL_MS);
}

/* ---- main ------------------------------------------------------------------------------ */

static int fork_sched_parse_victim(const char *text, enum sched_victim *victim)
{
	if (strcmp(text, "parent") == 0)
		*victim = SCHED_VICTIM_PARENT;
	else if (strcmp(text, "child") == 0)
		*victim = SCHED_VICTIM_CHILD;
	else if (strcmp(text, "peer") == 0)
		*victim = SCHED_VICTIM_PEER;
	else
		return -1;
	return 0;
}

static int fork_sched_parse(int argc, char **argv, struct sched_options *o)
{
	bool have_seed = false, have_runs = false;
	uint64_t stall;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;

		if (strcmp(arg, "--verbose") == 0) {
			o->verbose = true;
			continue;
		}
		if (arg[0] != '-') {
			if (have_seed || fault_parse_u64(arg, 0, UINT64_MAX, &o->first_seed) < 0)
				return -1;
			have_seed = true;
			continue;
		}
		if (value == NULL)
			return -1;
		i++;
		if (strcmp(arg, "--kill") == 0)
			r = fork_sched_parse_victim(value, &o->victim);
		else if (strcmp(arg, "--runs") == 0)
			r = fault_parse_u64(value, 1, 1000000, &o->runs), have_runs = true;
		else if (strcmp(arg, "--first-seed") == 0)
			r = fault_parse_u64(value, 0, UINT64_MAX, &o->first_seed);
		else if (strcmp(arg, "--time-limit") == 0)
			r = fault_parse_u64(value, 1, 100000, &o->time_limit_s);
		else if (strcmp(arg, "--max-failures") == 0)
			r = fault_parse_u64(value, 1, 1000000, &o->max_failures);
		else if (strcmp(arg, "--stall-ms") == 0)
			r = fault_parse_u64(value, 100, 600000, &stall), o->stall_ms = (int)stall;
		else
			return -1;
		if (r < 0)
			return -1;
	}
	/* Either one SEED, or --runs (with --first-seed). */
	return have_seed != have_runs ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sched_options o = { .first_seed = 1, .runs = 1, .stall_ms = SCHED_DEFAULT_STALL_MS };
	static const char *const victims[] = { "none", "parent", "child", "peer" };
	uint64_t failed = 0, ran = 0;
	double start = fault_now_ms();
	char seeds[512] = "";

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		fork_sched_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (fork_sched_parse(argc, argv, &o) < 0) {
		fork_sched_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Orphaned children (a child whose parent exited or was killed) come to the driver. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (uint64_t i = 0; i < o.runs; i++) {
		struct sched_plan plan;

		if (o.time_limit_s != 0 && fault_now_ms() - start > (double)o.time_limit_s * 1000) {
			printf("fork_sched: time limit of %llu s reached after %llu of %llu runs\n",
			       (unsigned long long)o.time_limit_s, (unsigned long long)ran,
			       (unsigned long long)o.runs);
			failed += o.runs - ran;
			break;
		}
		sched_plan_make(&plan, o.first_seed + i, o.victim);
		ran++;
		if (!sched_run_plan(&plan, &o)) {
			size_t len = strlen(seeds);

			failed++;
			if (len < sizeof seeds - 24)
				snprintf(seeds + len, sizeof seeds - len, " %llu",
					 (unsigned long long)plan.seed);
			if (o.max_failures != 0 && failed >= o.max_failures && i + 1 < o.runs) {
				printf("fork_sched: stopping after %llu failed runs\n",
				       (unsigned long long)failed);
				failed += o.runs - ran;
				break;
			}
		}
	}
	printf("fork_sched: %llu runs of %llu from seed %llu (kill: %s) in %.1f s: %llu failed%s%s\n",
	       (unsigned long long)ran, (unsigned long long)o.runs,
	       (unsigned long long)o.first_seed, victims[o.victim],
	       (fault_now_ms() - start) / 1000, (unsigned long long)failed,
	       failed ? ", seeds:" : "", seeds);
	return failed == 0 ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}
