/* Helpers the fork test programs share: a stream of stream.h continued from any offset by whichever process owns the socket, and counts of viaudit's shared memory held by a process. */
#ifndef VI_TESTS_FORK_UTIL_H
#define VI_TESTS_FORK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream.h"

/*
 * The two streams of one connection as seen from one end, by offsets: the bytes of SEND_SEED
 * this end has handed to the socket, and the bytes of RECV_SEED it has received and checked.
 * Byte N of a stream depends only on its seed and N (stream.h), so a process that is handed
 * the offsets (a forked child, say) continues both streams where the previous owner stopped,
 * and any byte lost, repeated or reordered on the way shows as a mismatch at its offset.
 *
 * The socket is left in blocking mode: the pump passes MSG_DONTWAIT on each call instead of
 * setting O_NONBLOCK, which the file description shares with every process that holds it.
 */
struct fork_pump {
	int fd;
	uint64_t send_seed, recv_seed;
	uint64_t send_total, recv_total; /* the streams' lengths */
	uint64_t sent, received;         /* the offsets reached */
	uint64_t chunks;                 /* state of the chunk-size generator */
	bool shut_early;                 /* shut down the write side once all is sent, even before the end */
	bool shut, eof;
};

/* Sets up PUMP at offset 0 of both streams. */
void fork_pump_init(struct fork_pump *pump, int fd, uint64_t send_seed, uint64_t recv_seed,
		    uint64_t send_total, uint64_t recv_total, uint64_t chunk_seed);

/*
 * How far a pump is asked to go: send up to SEND_LIMIT and receive up to RECV_LIMIT; with
 * TO_END, send the whole stream and shut down the write side, and receive the whole stream
 * and then the EOF (an extra byte or an early EOF is an error).
 */
struct fork_pump_goal {
	uint64_t send_limit, recv_limit;
	bool to_end;
};

/* The goal that runs both streams to their end. */
struct fork_pump_goal fork_pump_goal_end(const struct fork_pump *pump);

/* True when PUMP has reached GOAL. */
bool fork_pump_done(const struct fork_pump *pump, const struct fork_pump_goal *goal);

/* The poll() events PUMP waits for to get nearer GOAL (0 when it has reached it). */
short fork_pump_events(const struct fork_pump *pump, const struct fork_pump_goal *goal);

/*
 * After poll() said REVENTS for the socket, makes at most one receive and one send towards
 * GOAL (and the shutdown when due). Returns the bytes moved (>= 0), or -1 with RESULT saying
 * what went wrong and at which offset.
 */
long fork_pump_step(struct fork_pump *pump, short revents, const struct fork_pump_goal *goal,
		    struct stream_result *result);

/*
 * One receive or one send made with the blocking calls read() and write(), the way a program
 * first touches a socket it got from its parent. READ: read() up to a chunk, checked; else
 * write() up to a chunk. Returns the bytes moved (> 0), or -1 with RESULT set.
 */
long fork_pump_touch(struct fork_pump *pump, bool read, const struct fork_pump_goal *goal,
		     struct stream_result *result);

/*
 * Steps PUMP until it reaches GOAL, waiting in poll(). Fails with STREAM_TIMEOUT when no
 * byte moved for STALL_MS. Returns 0 (RESULT says ok, with the offsets), or -1 (RESULT set).
 */
int fork_pump_run(struct fork_pump *pump, const struct fork_pump_goal *goal, int stall_ms,
		  struct stream_result *result);

/* Fills RESULT with an OK outcome at PUMP's offsets. */
void fork_pump_result_ok(const struct fork_pump *pump, struct stream_result *result);

/* True for an outcome a survivor may see when its peer is gone: EOF, ECONNRESET or EPIPE (ENOTCONN from shutdown). */
bool fork_result_is_clean_end(const struct stream_result *result);

/* viaudit's shared segments are memfds named "viaudit": "/memfd:viaudit (deleted)" in /proc. */
#define FORK_MEMFD_NAME "memfd:viaudit"

/* What a process holds of viaudit's shared memory: mappings (/proc/PID/maps) and fds. */
struct fork_memfd_count {
	int maps, fds;
};

/* Counts PID's (0: this process's) mappings and fds of FORK_MEMFD_NAME. Returns 0 or -errno. */
int fork_count_memfd(pid_t pid, struct fork_memfd_count *count);

/*
 * Waits up to MS milliseconds for this process's counts to come down to at most BASELINE (a
 * close may release its segment a moment later). Stores the last counts in *NOW; returns true
 * when they came down.
 */
bool fork_wait_memfd_baseline(const struct fork_memfd_count *baseline, int ms,
			      struct fork_memfd_count *now);

/* pidfd_open(2): an fd that polls readable once PID has ended. Returns it, or -errno. */
int fork_pidfd_open(pid_t pid);

/* Formats a byte count short ("0", "512", "64K", "1.5M", "2M+3") into BUF; returns BUF. */
const char *fork_format_bytes(uint64_t bytes, char *buf, size_t size);

#endif
