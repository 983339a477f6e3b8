/* A single-producer single-consumer byte ring in memory shared with a peer process that is not trusted. */
#ifndef VI_TRANSPORT_SHM_RING_H
#define VI_TRANSPORT_SHM_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "futex_sem.h"

#define SHM_CACHE_LINE 64

/* Bounds of a ring's capacity (a power of two), the same as the policy's `ring_size`. */
#define SHM_RING_SIZE_MIN ((size_t)4 << 10)
#define SHM_RING_SIZE_MAX ((size_t)1 << 30)
#define SHM_RING_SIZE_DEFAULT ((size_t)1 << 20)

/* How long a waiter spins before it sleeps when the machine has more than one CPU. */
#define SHM_SPIN_DEFAULT_US 50

/* shm_ring_read/readv flag: copy the bytes out but leave them in the ring. */
#define SHM_RING_PEEK 0x1

/*
 * The shared part of one direction, in the control segment: four cache lines, each written
 * by one side only (plus rare slow-path words), so the two CPUs never false-share a line
 * on the data path. head and tail are free-running 64-bit byte counts (they never wrap in
 * practice; the arithmetic is modular anyway). The lines are ordered head, readable, tail,
 * writable so that head and tail also sit in different 128-byte pairs, which the adjacent-
 * line prefetcher of x86 CPUs moves together.
 *
 * Everything here may be overwritten by the peer at any moment: each side copies a value
 * into a local once, checks it, and only then uses it.
 */
struct shm_ring_shared {
	/* Bytes ever written. Stored by the producer only. */
	_Alignas(SHM_CACHE_LINE) _Atomic uint64_t head;
	/* The consumer sleeps here waiting for bytes; the producer posts. */
	_Alignas(SHM_CACHE_LINE) struct futex_sem readable;
	/* Nonzero once the producer has closed (EOF after the bytes before it). */
	_Atomic uint32_t writer_closed;
	/* Bytes ever read. Stored by the consumer only. */
	_Alignas(SHM_CACHE_LINE) _Atomic uint64_t tail;
	/* The producer sleeps here waiting for space; the consumer posts. */
	_Alignas(SHM_CACHE_LINE) struct futex_sem writable;
	/* Nonzero once the consumer has closed (writes get EPIPE). */
	_Atomic uint32_t reader_closed;
};

enum shm_ring_role {
	SHM_RING_PRODUCER,
	SHM_RING_CONSUMER,
};

/* System calls a ring has made, for tests and statistics. */
struct shm_ring_stats {
	uint64_t futex_waits;
	uint64_t futex_wakes;
	uint64_t eventfd_writes;
};

/*
 * One side's private view of a ring: nothing here is in shared memory. The side's own
 * counter is authoritative here (the shared copy is only published); the peer's counter is
 * the last value read and checked.
 */
struct shm_ring {
	struct shm_ring_shared *shared;
	unsigned char *data;            /* capacity bytes, in shared memory */
	_Atomic uint32_t *reset;        /* the connection's reset word, in shared memory */
	struct shm_ring_shared *sibling; /* the other direction's shared part, or NULL */
	uint64_t capacity;               /* a power of two */
	uint64_t mask;
	uint64_t head;                   /* producer: its own; consumer: last checked */
	uint64_t tail;                   /* consumer: its own; producer: last checked */
	enum shm_ring_role role;
	bool closed;                     /* this side has closed its half */
	bool broken;                     /* the connection failed: every call returns -ECONNRESET */
	const char *broken_reason;       /* why, for the log */
	int wake_fd;                     /* the peer's eventfd, written when it sleeps in epoll; -1: none */
	/*
	 * A word in shared memory that also ends a wait once it exceeds attention_seen (the
	 * fork handoff's intermit request), checked after the sleep is announced, so that a
	 * request posted at any moment is never slept through. NULL: none.
	 */
	const _Atomic uint32_t *attention;
	uint32_t attention_seen;
	struct shm_ring_stats stats;
};

/*
 * Sets up one side of a ring whose shared part and data already exist. The counters are
 * read once from shared memory (0 for a fresh segment) and must be consistent. `reset` is
 * the connection's reset word; `sibling` the other direction's shared part, or NULL.
 * Returns 0, -EINVAL for bad arguments, or -EPROTO when the shared counters are corrupt.
 */
int shm_ring_init(struct shm_ring *ring, struct shm_ring_shared *shared, void *data,
		  size_t capacity, enum shm_ring_role role, _Atomic uint32_t *reset,
		  struct shm_ring_shared *sibling);

/*
 * Producer: copies up to len bytes in and publishes them. Returns the bytes written (fewer
 * than len when the ring is nearly full), -EAGAIN when full, -EPIPE after either side
 * closed, -ECONNRESET when the connection failed. Wakes the consumer if it sleeps.
 */
ssize_t shm_ring_write(struct shm_ring *ring, const void *buf, size_t len);

/* Producer: shm_ring_write for an iovec array. Returns as shm_ring_write, or -EINVAL. */
ssize_t shm_ring_writev(struct shm_ring *ring, const struct iovec *iov, int iovcnt);

/*
 * Consumer: copies up to len bytes out; with SHM_RING_PEEK they stay in the ring. Returns
 * the bytes read, 0 at EOF (the producer closed and everything before it was read, or this
 * side closed), -EAGAIN when empty, -ECONNRESET when the connection failed, -EINVAL.
 */
ssize_t shm_ring_read(struct shm_ring *ring, void *buf, size_t len, int flags);

/* Consumer: shm_ring_read for an iovec array. Returns as shm_ring_read. */
ssize_t shm_ring_readv(struct shm_ring *ring, const struct iovec *iov, int iovcnt, int flags);

/* Either side: bytes written and not yet read (FIONREAD, SIOCOUTQ). Returns >= 0 or -errno. */
ssize_t shm_ring_readable(struct shm_ring *ring);

/* Either side: free space. Returns >= 0 or -errno. */
ssize_t shm_ring_writable(struct shm_ring *ring);

/*
 * Whether the next read (consumer) or write (producer) would return something other than
 * -EAGAIN: bytes or space, EOF, EPIPE or a failure. Returns 1 or 0.
 */
int shm_ring_ready(struct shm_ring *ring);

/* Whether the peer closed its half (consumer: the writer; producer: the reader). */
bool shm_ring_peer_closed(const struct shm_ring *ring);

/*
 * Closes this side's half: a producer's consumer reads EOF after the bytes already written;
 * a consumer's producer gets -EPIPE. Wakes the peer. Returns 0 or -errno.
 */
int shm_ring_close(struct shm_ring *ring);

/* writer_closed value of a producer that closed with a reset (TCP's RST after its data). */
#define SHM_RING_ABORTED 2u

/*
 * Producer: closes its half with a reset: the consumer reads the bytes already written,
 * then -ECONNRESET instead of EOF. Returns 0 or -errno.
 */
int shm_ring_abort(struct shm_ring *ring);

/* Consumer: whether the producer closed its half with shm_ring_abort. */
bool shm_ring_peer_aborted(const struct shm_ring *ring);

/* Fails the connection (both directions, both processes) with ECONNRESET and wakes every sleeper. */
void shm_ring_reset(struct shm_ring *ring);

/*
 * Wakes the peer if it announced that it sleeps: the futex for a thread in
 * shm_ring_wait_*, the eventfd (wake_fd) for one in epoll. A producer wakes the consumer,
 * a consumer the producer. Reads and writes call it themselves; it costs one fence and one
 * load, and no system call while the peer is awake. Returns 0 or -errno.
 */
int shm_ring_notify(struct shm_ring *ring);

/*
 * Consumer: waits until shm_ring_ready(). Spins for spin_us, then sleeps on the futex;
 * timeout_ms < 0 waits without limit, 0 only checks. A peer may die or stop posting, so
 * callers that must notice it pass a bounded timeout and check the peer between calls.
 * Returns 0 when ready, when `attention` moved, or when woken by the peer (callers loop),
 * -ETIMEDOUT, -EINTR, or -EINVAL.
 */
int shm_ring_wait_readable(struct shm_ring *ring, long spin_us, int timeout_ms);

/* Producer: as shm_ring_wait_readable, waiting for space. */
int shm_ring_wait_writable(struct shm_ring *ring, long spin_us, int timeout_ms);

/*
 * Announces that this side will sleep in epoll/poll on its own eventfd, which the peer then
 * writes (through its wake_fd) whenever it makes this side ready. Returns 1 when the ring is
 * ready already (do not sleep), else 0. shm_ring_disarm_eventfd withdraws it.
 */
int shm_ring_arm_eventfd(struct shm_ring *ring);
void shm_ring_disarm_eventfd(struct shm_ring *ring);

/* The spin before sleeping, sized to the machine: 0 with one CPU online, else SHM_SPIN_DEFAULT_US. */
long shm_spin_default_us(void);

#endif
