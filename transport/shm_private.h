/* What the files of the same-host endpoint share (shm.c, shm_setup.c, shm_handoff.c): setting an endpoint up, its locks, its clock and its peer check. */
#ifndef VI_TRANSPORT_SHM_PRIVATE_H
#define VI_TRANSPORT_SHM_PRIVATE_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "shm_segment.h"
#include "transport.h"

/* Makes CONN an shm endpoint with nothing mapped yet (shm_ops, no descriptors). */
void vi_shm_endpoint_init(struct vi_conn *conn, const struct shm_options *options);

/*
 * Maps the segment of MEMFD (SIZE bytes; FRESH: lay it out first for RING_SIZE) as SIDE,
 * sets up this side's rings and the session page. Returns 0 or -errno.
 */
int vi_shm_endpoint_map(struct vi_conn *conn, int memfd, size_t size, enum shm_segment_side side,
			bool fresh, size_t ring_size);

/* Releases what vi_shm_endpoint_init and _map made, without ending the session. */
void vi_shm_endpoint_release(struct vi_conn *conn);

static inline void shm_lock(atomic_flag *lock)
{
	/* Acquire pairs with the release in shm_unlock. */
	while (atomic_flag_test_and_set_explicit(lock, memory_order_acquire))
		sched_yield();
}

static inline void shm_unlock(atomic_flag *lock)
{
	atomic_flag_clear_explicit(lock, memory_order_release);
}

/* CLOCK_MONOTONIC in nanoseconds. */
long long shm_now_ns(void);

/* Whether the peer is gone (shm.c: the TCP state, then the session channel). */
bool shm_peer_gone(struct shm_endpoint *e, int fd, bool force);

#endif
