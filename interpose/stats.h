/* This process's virtual sockets, published in its stats segment (<viaudit/stats.h>) for `viaudit stat`. */
#ifndef VI_INTERPOSE_STATS_H
#define VI_INTERPOSE_STATS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <viaudit/stats.h>

#include "vsock.h"

/* ---- the segment itself (the unit tests use these with a directory of their own) ---- */

/* What a slot says about a socket. NULL strings are stored empty. */
struct stats_identity {
	int fd;
	enum vi_stats_kind kind;
	const char *transport;
	const char *local;
	const char *peer;
	const char *caller;
	const char *rule;
	const char *reason;
};

/*
 * Makes DIR/viaudit-stat-PID (O_EXCL, mode 0600; a file already there has our PID in its
 * name, so it is a dead process's or our own image's before exec, and is replaced), sizes
 * it for VI_STATS_SLOTS slots and maps it shared. Returns 0 with *out set, or -errno.
 */
int stats_segment_create(const char *dir, pid_t pid, const char *program, uint64_t start_time,
			 struct vi_stats_header **out);

void stats_segment_unmap(struct vi_stats_header *h);

/* A slot's counters, carried over when a forked child republishes its parent's slot. */
struct stats_counts {
	uint64_t bytes_in, bytes_out, handoffs, reconnects;
};

/*
 * Takes a free slot and publishes `id` in it with the given state bits, watch value and
 * counters (NULL: zeros). Returns the slot, or NULL when every slot is taken (counted in
 * the header's `dropped`).
 */
struct vi_stats_slot *stats_slot_claim(struct vi_stats_header *h, const struct stats_identity *id,
				       uint32_t state, uint32_t watch,
				       const struct stats_counts *counts);

/* Rewrites a claimed slot's identity (live fields untouched). */
void stats_slot_update(struct vi_stats_slot *slot, const struct stats_identity *id);

/* Marks a slot free; `h` is the segment it belongs to. */
void stats_slot_release(struct vi_stats_header *h, struct vi_stats_slot *slot);

/* ---- the glue to virtual sockets (interpose/calls.c and vsock.c) ---- */

/*
 * Publishes vs, about to be installed at fd, as carried by `transport` ("shm", "tcp") with
 * `reason` (NULL when it is on the transport its rule asked for). Makes the segment the
 * first time. Never fails the caller: without a segment the socket is just not shown. May
 * change the program's errno (callers preserve it).
 */
void stats_publish(struct vsock *vs, int fd, const char *transport, const char *reason);

/* vs is gone (its last descriptor closed): frees its slot. */
void stats_unpublish(struct vsock *vs);

/* A shutdown(how) on vs returned r (>= 0 or -errno). */
void stats_note_shutdown(struct vsock *vs, int how, long r);

/* Slow paths of stats_count, out of line. */
void stats_note_change(struct vsock *vs, int fd);
/* In a forked child still on its parent's copy: makes its own segment now (see stats.c). */
void stats_child_segment(void);
void stats_note_end(struct vsock *vs, long r, bool in);

/*
 * The data path's bookkeeping after an endpoint's recvmsg (in) or sendmsg returned r:
 * a load, an add and a store: no system call, no lock, no locked instruction. The
 * identity is rewritten (out of line) only when the slot's `watch` differs from the
 * connection's transport: after the listener refused shm, for the first byte of a
 * non-blocking connect, and in a forked child for a slot inherited from its parent.
 */
/* What a slot's watch holds while its identity is up to date: the transport and the handoffs. */
static inline uint32_t stats_watch_value(const struct vi_conn *conn)
{
	return (uint32_t)conn->transport | conn->handoffs << 8;
}

static inline void stats_count(struct vsock *vs, int fd, long r, bool in, int flags)
{
	struct vi_stats_slot *slot = atomic_load_explicit(&vs->stat, memory_order_relaxed);
	if (slot == NULL)
		return;
	if (__builtin_expect(r > 0, 1)) {
		/*
		 * A relaxed load and store, not an atomic add: a locked add drains the store
		 * buffer right after the ring write, which cost 10-15% of the 64 B message rate.
		 * Two threads moving bytes the same way on one socket at the same instant can
		 * lose one's count (their bytes interleave unpredictably already); readers
		 * still never see a torn value.
		 */
		_Atomic uint64_t *count = in ? &slot->bytes_in : &slot->bytes_out;
		if (!in || (flags & MSG_PEEK) == 0)
			atomic_store_explicit(count,
					      atomic_load_explicit(count, memory_order_relaxed) +
						      (uint64_t)r,
					      memory_order_relaxed);
		if (__builtin_expect(atomic_load_explicit(&slot->watch, memory_order_relaxed) !=
					     stats_watch_value(&vs->conn),
				     0))
			stats_note_change(vs, fd);
	} else if ((r == 0 && in) || r == -ECONNRESET || r == -EPIPE) {
		stats_note_end(vs, r, in);
	}
}

#endif
