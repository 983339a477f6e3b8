/* The parts of `viaudit bench` and what they share: the measures, the cases and their results. */
#ifndef VIAUDIT_BENCH_H
#define VIAUDIT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What one connection of the benchmark does; the first word its client sends. */
enum bench_mode {
	BENCH_PINGPONG = 1, /* a message each way, one at a time: round-trip time */
	BENCH_STREAM = 2,   /* messages one way until EOF, then the byte count back: rate */
};

/* One measure of the table: a mode with a message size. */
struct bench_measure {
	enum bench_mode mode;
	size_t size;
};

enum { BENCH_MEASURE_COUNT = 5 };

/* The largest message of a measure. */
#define BENCH_MAX_SIZE (64 * 1024)

/* A ping-pong keeps at most this many round trips: plenty for a 99th percentile, 8 MiB. */
#define BENCH_MAX_SAMPLES (2u << 20)
extern const struct bench_measure bench_measures[BENCH_MEASURE_COUNT];

/* What carries the bytes: one row group of the table. */
enum bench_case {
	BENCH_CASE_TCP,     /* kernel TCP over 127.0.0.1, no audit module */
	BENCH_CASE_UNIX,    /* AF_UNIX stream sockets */
	BENCH_CASE_RAW,     /* two processes spinning on counters in a shared page: the floor */
	BENCH_CASE_VIAUDIT, /* the TCP code under the audit module, 127.0.0.1 routed to shm */
	BENCH_CASE_SPIN0,   /* the same with `set spin_us 0` */
	BENCH_CASE_COUNT
};

/* Which transport the audit module's conns log says carried a viaudit case's connections. */
enum bench_carrier {
	BENCH_CARRIER_KERNEL,     /* not a viaudit case */
	BENCH_CARRIER_SHM,        /* every connection: transport=shm */
	BENCH_CARRIER_FALLBACK,   /* every connection: transport=tcp (the reason is kept) */
	BENCH_CARRIER_MIXED,      /* some of each */
	BENCH_CARRIER_NOT_ROUTED, /* no conns line at all: the module did not route them */
	BENCH_CARRIER_UNKNOWN,    /* not measured */
};

/* The figures of one measure of one case. */
struct bench_result {
	bool measured;
	/* BENCH_PINGPONG: round-trip times of the samples kept after the warm-up. */
	uint64_t samples;
	uint64_t p50_ns;
	uint64_t p99_ns;
	/* BENCH_STREAM: messages and bytes the server received, over the time to its reply. */
	uint64_t messages;
	uint64_t bytes;
	uint64_t elapsed_ns;
};

/* Everything one `viaudit bench` run measured, for the table, the JSON and the plot. */
struct bench_report {
	struct bench_result results[BENCH_MEASURE_COUNT][BENCH_CASE_COUNT];
	enum bench_carrier carriers[BENCH_CASE_COUNT];
	char carrier_reasons[BENCH_CASE_COUNT][256]; /* the fallback reason of the conns log */
	long cpus;
	double seconds; /* per measure */
	char load_before[64];
	char load_after[64];
	double busy_cpus; /* CPUs kept busy by other work just before the run, or -1 */
};

/* The start of a ping-pong that is not counted: a tenth of it, at most 0.2 s. */
static inline double bench_warmup_seconds(double seconds)
{
	return seconds / 10 < 0.2 ? seconds / 10 : 0.2;
}

/* bench_peer.c: the two ends of a socket case, each run in a process of its own. */

/*
 * `viaudit bench --serve KIND` (KIND tcp or unix): listens on 127.0.0.1 or an abstract
 * AF_UNIX name, prints the address on one line of stdout, and serves connections one at a
 * time until it is killed. Returns the exit status when it cannot serve.
 */
int bench_peer_serve(const char *kind);

/*
 * `viaudit bench --measure KIND ADDRESS MODE SIZE SECONDS`: connects to the server at
 * ADDRESS, runs one measure for SECONDS and prints its result line on stdout (see
 * bench_result_parse). Returns the exit status.
 */
int bench_peer_measure(const char *kind, const char *address, enum bench_mode mode, size_t size,
		       double seconds);

/* Parses a result line of bench_peer_measure into `result`. Returns 0, or -EINVAL. */
int bench_result_parse(const char *line, struct bench_result *result);

/*
 * Records one round trip that ran from `before` to `after` (ns), unless it still falls in
 * the warm-up (before `warm_end`). Returns true when the measure is over: past `deadline`,
 * or the BENCH_MAX_SAMPLES samples are full.
 */
static inline bool bench_sample(uint32_t *samples, size_t *count, uint64_t before,
				uint64_t after, uint64_t warm_end, uint64_t deadline)
{
	if (before >= warm_end) {
		uint64_t rtt = after - before;
		samples[(*count)++] = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
	}
	return after >= deadline || *count == BENCH_MAX_SAMPLES;
}

/* Sorts `samples` and stores their 50th and 99th percentiles (nearest rank) in `result`. */
void bench_result_set_percentiles(struct bench_result *result, uint32_t *samples, size_t count);

/* The monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* bench_shmraw.c */

/*
 * Ping-pong of `size` bytes (at most 64 KiB) between this process and a forked child through
 * a MAP_SHARED mapping, both spinning on counters in separate cache lines, for `seconds`.
 * Returns 0 with `result` filled, or -errno.
 */
int bench_shmraw_pingpong(size_t size, double seconds, double warmup, struct bench_result *result);

/* bench_report.c */

/* The row label of a case, with the transport that carried a viaudit case. */
const char *bench_report_label(const struct bench_report *report, enum bench_case which);

/* Prints the table, the ratios to TCP and the target lines of issue 4 item 7. */
void bench_report_print_table(FILE *out, const struct bench_report *report);

/* Prints the same as one JSON object. */
void bench_report_print_json(FILE *out, const struct bench_report *report);

/*
 * Draws the figures into the PNG `path` with gnuplot, using `workdir` for its input files.
 * Returns 0, -ENOENT when gnuplot is not installed, or another -errno.
 */
int bench_report_plot(const struct bench_report *report, const char *path, const char *workdir);

#endif
