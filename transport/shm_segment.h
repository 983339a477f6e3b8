/* The layout of one same-host connection's shared memory: a control segment and two rings, and the check of a segment received from a peer. */
#ifndef VI_TRANSPORT_SHM_SEGMENT_H
#define VI_TRANSPORT_SHM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm_ring.h"

/*
 * One memfd per connection, created by the connector, sealed against growing and shrinking,
 * and passed over the door:
 *
 *     offset 0                        control segment, SHM_SEGMENT_CONTROL_SIZE (4 KiB):
 *                                       header (magic, version, sizes), the reset word,
 *                                       ring 0's and ring 1's shared parts (4 lines each)
 *     4096                            ring 0 data, ring_size bytes: connector -> acceptor
 *     4096 + ring_size                ring 1 data, ring_size bytes: acceptor -> connector
 *     4096 + 2 * ring_size            end
 *
 * So a connection costs 2 * ring_size + 4096 bytes: with the default ring_size of 1 MiB,
 * 2 MiB of ring data plus one 4 KiB control page, 2,101,248 bytes in all. The issue's
 * "at most 2 MiB of shared memory per connection by default" is read as the rings' data
 * (1 MiB per direction, as `set ring_size` says); the control page on top is the smallest
 * possible, since two power-of-two 1 MiB rings alone already fill 2 MiB. The rings' pages
 * are touched only as data flows, so an idle connection keeps little of it resident.
 */

#define SHM_SEGMENT_MAGIC 0x53414956u /* "VIAS" in memory on a little-endian host */
#define SHM_SEGMENT_VERSION 1
#define SHM_SEGMENT_CONTROL_SIZE 4096

/*
 * The session page: the first segment's control page stays mapped by every process that
 * holds either end for the session's life, while the rings move to new segments at each
 * fork handoff. sides[S] is about a handoff on side S (SHM_SEGMENT_CONNECTOR or _ACCEPTOR):
 * S's new owner writes `forked` and `intermit`; the other side's answering process writes
 * `marker`, `paused` and `switched`/`refused`. Handoffs are numbered from `serial` (never
 * reused: an ATTACH left over from one called off cannot be taken for a later one); a
 * segment is known by the number of the handoff that made it (the first: 0), and `epoch`
 * is the one in use. Both sides may be hostile: every value is checked.
 */
struct shm_session_side {
	_Alignas(SHM_CACHE_LINE) _Atomic uint32_t forked; /* S is held by several processes */
	_Atomic uint32_t intermit; /* the epoch S's new owner asks the other side to move to */
	_Atomic uint32_t paused;   /* the epoch the other side paused for (marker written) */
	_Atomic uint32_t switched; /* the epoch the other side moved to: a futex word */
	_Atomic uint32_t refused;  /* the epoch the other side refused (a bad ATTACH) */
	_Atomic uint64_t marker;   /* the other side's bytes ever written to S, at its pause */
};

struct shm_session {
	_Alignas(SHM_CACHE_LINE) _Atomic uint32_t epoch; /* the segment in use: its handoff's number */
	_Atomic uint32_t serial; /* the last handoff number given out (they never repeat) */
	_Atomic uint32_t busy;   /* the number of the handoff in progress, 0: none */
	struct shm_session_side sides[2];
};

/* `paused` value of a handoff its new owner called off before the peer paused for it. */
#define SHM_SESSION_CANCELLED 0x80000000u

/* Written once by the creator before the segment is passed; read-only afterwards. */
struct shm_segment_header {
	uint32_t magic;
	uint16_t version;
	uint16_t control_size; /* SHM_SEGMENT_CONTROL_SIZE */
	uint64_t ring_size;    /* capacity of each ring, a power of two */
	uint64_t segment_size; /* the whole memfd: shm_segment_size(ring_size) */
};

struct shm_segment_control {
	_Alignas(SHM_CACHE_LINE) struct shm_segment_header header;
	/* Nonzero once either side failed the connection (ECONNRESET both ways). */
	_Alignas(SHM_CACHE_LINE) _Atomic uint32_t reset;
	/*
	 * Who decided the connection's fate, once: SHM_HANDSHAKE_PENDING until the acceptor
	 * attaches (ATTACHED) or the connector stops waiting for it (ABANDONED). Compare and
	 * swap on both sides, so the bytes already in ring 0 are read by exactly one of the
	 * acceptor or the kernel socket.
	 */
	_Atomic uint32_t handshake;
	/* [0]: connector -> acceptor; [1]: acceptor -> connector. */
	struct shm_ring_shared rings[2];
	/* Used in the first segment only: the session page of the fork handoff (shm_handoff.h). */
	struct shm_session session;
};

enum shm_handshake {
	SHM_HANDSHAKE_PENDING = 0,
	SHM_HANDSHAKE_ATTACHED = 1,
	SHM_HANDSHAKE_ABANDONED = 2,
};

/* Which end of the connection a process is: it decides which ring it writes. */
enum shm_segment_side {
	SHM_SEGMENT_CONNECTOR, /* created the segment; writes ring 0, reads ring 1 */
	SHM_SEGMENT_ACCEPTOR,  /* received it over the door; writes ring 1, reads ring 0 */
};

/* The memfd size for rings of ring_size bytes. Returns it, or -EINVAL for a ring_size that is not a power of two in [4 KiB, 1 GiB]. */
ssize_t shm_segment_size(size_t ring_size);

/*
 * Lays out a fresh segment of `size` bytes at base (64-byte aligned; size must be
 * shm_segment_size(ring_size)): zeroes the control segment and writes the header. The ring
 * data is left alone (a new memfd is zero, and touching it would make it resident).
 * Returns 0 or -EINVAL.
 */
int shm_segment_init(void *base, size_t size, size_t ring_size);

/*
 * Checks a mapped segment, maybe received from a peer, and sets up this side's two rings:
 * tx (producer) and rx (consumer). The header is copied once and checked: magic, version,
 * control size, ring size (a power of two within bounds), and the sizes must agree with
 * each other and with `size`, the size of the mapping. Returns 0, -EINVAL for bad
 * arguments (NULL, misaligned base, a mapping too small for the control segment), or
 * -EPROTO for a segment that is not consistent.
 */
int shm_segment_attach(void *base, size_t size, enum shm_segment_side side, struct shm_ring *tx,
		       struct shm_ring *rx);

#endif
