/* The diagnostic channel: routes, conns, calls and debug lines, written to a private fd. */
#ifndef VI_TRANSPORT_LOG_H
#define VI_TRANSPORT_LOG_H

#include <stdbool.h>
#include <viaudit/policy.h>

struct vi_log {
	int fd;        /* private dup of stderr, or the VIAUDIT_LOG_FILE; -1 before init */
	unsigned mask; /* VI_LOG_* bits */
};

extern struct vi_log vi_log_state;

/*
 * Opens the channel: a close-on-exec dup of fd 2 placed high in the fd table (so a program
 * that closes or reuses fd 2 still gets its log, as sotruss does), or `file` when not NULL.
 * Returns 0, or -errno when `file` cannot be opened (the channel then stays on stderr).
 */
int vi_log_open(const char *file, unsigned mask);

/* Parses "routes,conns,calls,debug,trace" into VI_LOG_* bits; unknown words are ignored. */
unsigned vi_log_parse_mask(const char *text);

static inline bool vi_log_enabled(unsigned bit)
{
	return (vi_log_state.mask & bit) != 0;
}

/* Writes one line, "viaudit: " + the formatted text + "\n", in one write(2). Preserves errno. */
void vi_log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes preformatted text as is. Preserves errno. */
void vi_log_write(const char *text, size_t len);

/* Whether fd is the log's own descriptor (a program closing every fd must not close it). */
static inline bool vi_log_owns_fd(int fd)
{
	return fd >= 0 && fd == vi_log_state.fd;
}

#endif
