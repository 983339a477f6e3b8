/* The fork handoff of a same-host connection: who of a forked side's processes owns the endpoint, and how ownership moves with the peer's help. */
#ifndef VI_TRANSPORT_SHM_HANDOFF_H
#define VI_TRANSPORT_SHM_HANDOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm_private.h"
#include "shm_segment.h"
#include "transport.h"

/*
 * After fork() both processes hold the connection, but a ring has one reader and one writer.
 * The processes of one side share a handoff record (shared anonymous memory made at the first
 * fork, inherited by later children): the owner, whose mapping is the endpoint in use, and a
 * lock taken around each data call, so that one process at a time touches the rings.
 *
 * A read or write by a process that is not the owner is a trigger (T3, T4). Closing by the
 * owner (T1) or its exit (T2) gives up ownership; the next read or write by another holder
 * then moves the connection. The new owner N and the peer B run, over the session page
 * (shm_segment.h) and the session channel (the door connection kept from set-up):
 *
 *   1. intermit  N claims the next epoch k, makes a new segment, sets sides[N].intermit = k
 *                and sends ATTACH {session token, k} with the sealed memfd; wakes B (its
 *                eventfd, and its futexes when N maps the segment in use).
 *   2. marker    B, at its next call on the socket (at once if it sleeps in one), stops its
 *                readers and writers and records `marker`: its bytes ever written on the
 *                old endpoint. Everything before it is old data; nothing follows it.
 *   3. copy      B copies what is undelivered in both directions (its own bytes N's side
 *                has not read, and N's side's bytes it has not read) into the new rings, in
 *                order, with the closed and reset states.
 *   4. attach    B checks the token (the session secret only the holders know), the ring
 *                size and the memfd's seals, and moves its rings to the new segment.
 *   5. switched  B sets `epoch` and sides[N].switched = k and wakes N.
 *   6. retire    N moves to the new rings; the old segment is unmapped (the first one keeps
 *                only its control page, the session page, in use).
 *
 * The peer does the copy, so the new owner never needs the old endpoint: any holder can take
 * the connection over, the parent back from its child too. A peer that is not in a call on
 * the socket (asleep elsewhere, busy) cannot answer: when it has not paused within
 * HANDOFF_AWAY_MS and the new owner maps the segment in use (it inherited it), the new owner
 * calls the handoff off (a compare-and-swap on `paused` against the peer's) and takes the
 * segment in use as it is -- the old owner is kept out by the record's lock, and every byte
 * it moved is in the shared counters. A process that does not map the segment in use (a
 * parent taking back what its child moved) opens it where the record says a holder keeps
 * its memfd (/proc/PID/fd/FD, the same user's process) first; only when that holder is
 * gone too must it wait for the peer. Sockets nobody touches after fork
 * cost nothing; a child that execs never triggers. See DESIGN.md "Fork handoff".
 */

/* Processes of one side that one record tracks; more than this are not ended by close. */
#define SHM_HANDOFF_HOLDERS 24

struct shm_handoff_record {
	_Atomic uint64_t lock;   /* pid << 32 | tid of the thread in a data call; 0: none */
	_Atomic int32_t owner;   /* pid whose mapping is the endpoint in use; 0: it left */
	_Atomic uint32_t in_use; /* the slot is taken */
	_Atomic uint32_t unborn; /* children forked whose hook has not yet added them */
	/* Where the segment in use can be opened (/proc/PID/fd/FD), if a handoff made it. */
	_Atomic int32_t seg_pid, seg_fd;
	_Atomic uint64_t seg_ino;
	_Atomic int32_t holders[SHM_HANDOFF_HOLDERS]; /* pids holding the socket; 0: free */
};

/* What a data call is, for the log and for the trigger it may be. */
enum shm_handoff_trigger {
	SHM_TRIGGER_READ,  /* T3 */
	SHM_TRIGGER_WRITE, /* T4 */
};

/*
 * In the parent before fork(): gives the endpoint a record (its owner the caller), and tells
 * the peer this side is shared. Returns 0 or -errno (no record: the child must not use it).
 */
int shm_handoff_prepare_fork(struct shm_endpoint *e, int fd);

/* In the child after fork(), before it returns: the child holds the socket too. */
void shm_handoff_after_fork_child(struct shm_endpoint *e);

/*
 * Before a data call of a forked side: takes the record's lock and makes the caller the
 * owner, running the handoff when it is not. `resumed` is true for a call that slept and
 * comes back: if another process took the connection meanwhile, the call does not take it
 * back at once (the caller retries, and takes it after 100 ms). Returns 0 (locked and
 * owner), -EAGAIN (resumed and another owns it: this call slept 10 ms; retry),
 * -ECONNRESET (the peer is gone or refused).
 */
int shm_handoff_enter(struct vi_conn *conn, int fd, enum shm_handoff_trigger trigger,
		      bool resumed);

/* After a data call that shm_handoff_enter let in. */
void shm_handoff_leave(struct shm_endpoint *e);

/*
 * At close of a forked side: drops the caller from the holders and gives up ownership.
 * Returns true when other live processes still hold the socket (the session goes on).
 */
bool shm_handoff_release(struct shm_endpoint *e);

/*
 * Peer: whether handoff `k` of the other side still waits for an answer from this side, by
 * the session page (another process of this side may have answered it, or the new owner
 * called it off); if not, remembers it as answered. The slow half of shm_handoff_asked.
 */
bool shm_handoff_pending(struct shm_endpoint *e, uint32_t k);

/* Peer: whether the other side asks this side to move to a new endpoint. */
static inline bool shm_handoff_asked(struct shm_endpoint *e)
{
	if (e->session == NULL)
		return false;
	uint32_t k = atomic_load_explicit(&e->session->sides[1 - e->side].intermit,
					  memory_order_acquire);
	return k > e->answered && shm_handoff_pending(e, k);
}

/* Makes the endpoint's ring waits end when the peer asks for a handoff (shm_ring.h `attention`). */
void shm_handoff_watch(struct shm_endpoint *e);

/*
 * Peer, at its last close: when the other side is held by forked processes, leaves the
 * memfd of the segment in use on the session channel, so that one of them whose handoff
 * finds this side gone can still read what it had sent (shm_handoff.c).
 */
void shm_handoff_parting(struct shm_endpoint *e);

/* Whether this process may use the rings it maps now: an unforked side, or the owner of the current one. */
bool shm_handoff_owned(const struct shm_endpoint *e);

/* Peer: answers the other side's intermit (steps 2-5). Safe to call when not asked. */
void shm_handoff_answer(struct vi_conn *conn, int fd);

/* Whether the other side is held by several processes: sleep on the eventfd, which its new owner can always write. */
static inline bool shm_handoff_peer_forked(const struct shm_endpoint *e)
{
	return e->session != NULL &&
	       atomic_load_explicit(&e->session->sides[1 - e->side].forked, memory_order_relaxed);
}

#endif
