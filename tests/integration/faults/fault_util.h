/* Helpers the fault and fallback test programs share: loopback sockets, port files, clocks, and counts of open fds and memfd mappings. */
#ifndef VI_TESTS_FAULT_UTIL_H
#define VI_TESTS_FAULT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A program's exit statuses, the same in every tool here. */
#define FAULT_EXIT_OK 0
#define FAULT_EXIT_FAILED 1 /* a check failed, or the set-up broke */
#define FAULT_EXIT_USAGE 2
#define FAULT_EXIT_SKIP 77 /* what the test needs is not there (said on stdout) */

/*
 * Opens a TCP socket listening on 127.0.0.1 at a port the kernel picks, with BACKLOG.
 * Stores the port in *PORT. Returns the fd, or -errno.
 */
int fault_listen_loopback(int backlog, unsigned *port);

/* Connects a new blocking TCP socket to 127.0.0.1:PORT. Returns the fd, or -errno. */
int fault_connect_loopback(unsigned port);

/* Connects FD (already made, maybe bound) to 127.0.0.1:PORT. Returns 0 or -errno. */
int fault_connect_fd(int fd, unsigned port);

/*
 * Writes "PORT PID\n" to PATH through a temporary file and a rename, so that a script that
 * sees the file sees all of it. Returns 0 or -errno.
 */
int fault_write_port_file(const char *path, unsigned port);

/* Parses a decimal number in [MIN, MAX]. Returns 0 with *OUT set, or -EINVAL. */
int fault_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* CLOCK_MONOTONIC in milliseconds. */
double fault_now_ms(void);

/* Sleeps MS milliseconds (restarting after signals). */
void fault_sleep_ms(long ms);

/* The errno's name ("ECONNRESET"), or "errno N" for one glibc does not name. */
const char *fault_errno_name(int error);

/*
 * Writes or reads exactly LEN bytes on FD (blocking or not), waiting with poll() up to
 * TIMEOUT_MS in all. Returns 0, -ETIMEDOUT, -ECONNRESET for an EOF before LEN bytes (read),
 * or -errno.
 */
int fault_write_full(int fd, const void *buf, size_t len, int timeout_ms);
int fault_read_full(int fd, void *buf, size_t len, int timeout_ms);

/* Open descriptors of this process (the entries of /proc/self/fd). Returns the count or -errno. */
int fault_count_fds(void);

/* Lines of /proc/self/maps that contain PATTERN ("/memfd:"). Returns the count or -errno. */
int fault_count_maps(const char *pattern);

/* Prints the open fds grouped by what they point to ("anon_inode:[eventfd]", "socket"), with counts. */
void fault_list_fds(FILE *out, const char *prefix);

/* Prints the first five /proc/self/maps lines that contain PATTERN, and how many there are. */
void fault_list_maps(FILE *out, const char *prefix, const char *pattern);

/* Sets the soft RLIMIT_NOFILE to WANT. Returns 0, -EPERM when the hard limit is lower, or -errno. */
int fault_raise_nofile(uint64_t want);

/* A small deterministic pseudo-random generator (splitmix64), one state per use. */
uint64_t fault_random_next(uint64_t *state);

#endif
