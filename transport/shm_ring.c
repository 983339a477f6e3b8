/* The shared-memory byte ring of the same-host transport: lock-free, no system call per message, safe against a hostile peer. */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm_ring.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared-memory atomics must be lock-free");
_Static_assert(sizeof(struct shm_ring_shared) == 4 * SHM_CACHE_LINE,
	       "one cache line each for head, readable, tail and writable");

/*
 * Trust. Every value read from shared memory is loaded once into a local and checked before
 * it is used: the peer's counter must move forward and keep `head - tail` within
 * [0, capacity]. Buffer offsets are computed only from this side's own private counter, masked
 * by the private capacity, so no value the peer writes can move an access out of the data
 * area; a bad counter fails the connection with ECONNRESET. Flags are only ever tested for
 * zero. The peer may also change the data bytes while they are copied: that is its own
 * stream's content and cannot hurt us.
 */

static inline uint64_t shm_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void shm_ring_post_all(struct shm_ring_shared *shared)
{
	futex_sem_post(&shared->readable);
	futex_sem_post(&shared->writable);
}

/* Marks the connection failed and wakes everyone who could sleep on it. Returns -ECONNRESET. */
static int shm_ring_fail(struct shm_ring *ring, const char *reason)
{
	if (!ring->broken) {
		ring->broken = true;
		ring->broken_reason = reason;
		/* Relaxed: the word carries no data; readers only test it for zero. */
		atomic_store_explicit(ring->reset, 1, memory_order_relaxed);
		/* Our own other threads may sleep on either direction: wake them all once. */
		shm_ring_post_all(ring->shared);
		if (ring->sibling != NULL)
			shm_ring_post_all(ring->sibling);
	}
	return -ECONNRESET;
}

/* Returns 0, or -ECONNRESET when the connection failed here or the peer reset it. */
static inline int shm_ring_check_reset(struct shm_ring *ring)
{
	if (ring->broken)
		return -ECONNRESET;
	if (atomic_load_explicit(ring->reset, memory_order_relaxed) != 0)
		return shm_ring_fail(ring, "connection reset");
	return 0;
}

/* Producer: reads the consumer's tail. Returns 0 or -ECONNRESET. */
static int shm_ring_load_tail(struct shm_ring *ring)
{
	/* Acquire: pairs with the release store of tail in shm_ring_readv(), so the consumer
	 * has copied the bytes out before we reuse their space. */
	uint64_t tail = atomic_load_explicit(&ring->shared->tail, memory_order_acquire);

	/* It may only move forward, and never past what we wrote. */
	if (tail - ring->tail > ring->head - ring->tail)
		return shm_ring_fail(ring, "peer's read counter out of range");
	ring->tail = tail;
	return 0;
}

/* Consumer: reads the producer's head. Returns 0 or -ECONNRESET. */
static int shm_ring_load_head(struct shm_ring *ring)
{
	/* Acquire: pairs with the release store of head in shm_ring_writev(), so the bytes it
	 * published are in the data area before we copy them out. */
	uint64_t head = atomic_load_explicit(&ring->shared->head, memory_order_acquire);
	uint64_t fill = head - ring->tail;

	/* It may only move forward, and never more than capacity ahead of what we read. */
	if (fill > ring->capacity || fill < ring->head - ring->tail)
		return shm_ring_fail(ring, "peer's write counter out of range");
	ring->head = head;
	return 0;
}

/* Returns the sum of the lengths, or -EINVAL (bad count, or a sum past SSIZE_MAX). */
static ssize_t shm_iov_total(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && iov == NULL))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/* Copies len <= capacity bytes to the ring at counter pos, wrapping at the end. */
static void shm_ring_copy_in(struct shm_ring *ring, uint64_t pos, const unsigned char *src, size_t len)
{
	size_t off = (size_t)(pos & ring->mask);
	size_t first = (size_t)shm_min(len, ring->capacity - off);

	memcpy(ring->data + off, src, first);
	if (len > first)
		memcpy(ring->data, src + first, len - first);
}

/* Copies len <= capacity bytes from the ring at counter pos, wrapping at the end. */
static void shm_ring_copy_out(const struct shm_ring *ring, uint64_t pos, unsigned char *dst, size_t len)
{
	size_t off = (size_t)(pos & ring->mask);
	size_t first = (size_t)shm_min(len, ring->capacity - off);

	memcpy(dst, ring->data + off, first);
	if (len > first)
		memcpy(dst + first, ring->data, len - first);
}

/* Returns 0, -EINVAL, -EPROTO (corrupt counters). */
int shm_ring_init(struct shm_ring *ring, struct shm_ring_shared *shared, void *data,
		  size_t capacity, enum shm_ring_role role, _Atomic uint32_t *reset,
		  struct shm_ring_shared *sibling)
{
	if (ring == NULL || shared == NULL || data == NULL || reset == NULL)
		return -EINVAL;
	if (capacity < SHM_RING_SIZE_MIN || capacity > SHM_RING_SIZE_MAX ||
	    (capacity & (capacity - 1)) != 0)
		return -EINVAL;
	if (role != SHM_RING_PRODUCER && role != SHM_RING_CONSUMER)
		return -EINVAL;

	*ring = (struct shm_ring){
		.shared = shared,
		.data = data,
		.reset = reset,
		.sibling = sibling,
		.capacity = capacity,
		.mask = capacity - 1,
		.role = role,
		.wake_fd = -1,
	};
	/* Acquire: pairs with the release stores of head and tail in writev/readv, for a
	 * segment that is attached while the peer already runs. */
	uint64_t head = atomic_load_explicit(&shared->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&shared->tail, memory_order_acquire);
	if (head - tail > capacity)
		return -EPROTO;
	ring->head = head;
	ring->tail = tail;
	return 0;
}

/* Producer checks before writing. Returns 0, -EINVAL, -ECONNRESET or -EPIPE. */
static inline int shm_ring_check_producer(struct shm_ring *ring)
{
	if (ring->role != SHM_RING_PRODUCER)
		return -EINVAL;
	int r = shm_ring_check_reset(ring);
	if (r < 0)
		return r;
	if (ring->closed)
		return -EPIPE;
	/* Relaxed: the flag only tells us to stop; it orders nothing. */
	if (atomic_load_explicit(&ring->shared->reader_closed, memory_order_relaxed) != 0)
		return -EPIPE;
	return 0;
}

/* Returns bytes written, -EAGAIN, -EPIPE, -ECONNRESET or -EINVAL. */
static int shm_ring_wake(struct shm_ring *ring, struct futex_sem *sem, uint32_t waiting);
static int shm_ring_notify_published(struct shm_ring *ring);

ssize_t shm_ring_writev(struct shm_ring *ring, const struct iovec *iov, int iovcnt)
{
	int r = shm_ring_check_producer(ring);
	if (r < 0)
		return r;
	ssize_t total = shm_iov_total(iov, iovcnt);
	if (total <= 0)
		return total;

	uint64_t space = ring->capacity - (ring->head - ring->tail);
	if (space < (uint64_t)total) {
		r = shm_ring_load_tail(ring);
		if (r < 0)
			return r;
		space = ring->capacity - (ring->head - ring->tail);
		if (space == 0)
			return -EAGAIN;
	}

	size_t n = (size_t)shm_min((uint64_t)total, space);
	uint64_t pos = ring->head;
	size_t left = n;
	for (int i = 0; left > 0; i++) {
		size_t chunk = (size_t)shm_min(iov[i].iov_len, left);
		if (chunk == 0)
			continue;
		shm_ring_copy_in(ring, pos, iov[i].iov_base, chunk);
		pos += chunk;
		left -= chunk;
	}
	ring->head += n;
	/* Seq_cst (at least release): pairs with the acquire load of head in
	 * shm_ring_load_head(), so the bytes copied above are visible to a consumer that sees
	 * the new head; and being seq_cst it is also the waker's fence of futex_sem.h. */
	atomic_store_explicit(&ring->shared->head, ring->head, memory_order_seq_cst);
	shm_ring_notify_published(ring);
	return (ssize_t)n;
}

/* Returns bytes written, -EAGAIN, -EPIPE, -ECONNRESET or -EINVAL. */
ssize_t shm_ring_write(struct shm_ring *ring, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return shm_ring_writev(ring, &iov, 1);
}

/* Returns bytes read, 0 at EOF, -EAGAIN, -ECONNRESET or -EINVAL. */
ssize_t shm_ring_readv(struct shm_ring *ring, const struct iovec *iov, int iovcnt, int flags)
{
	if (ring->role != SHM_RING_CONSUMER || (flags & ~SHM_RING_PEEK) != 0)
		return -EINVAL;
	int r = shm_ring_check_reset(ring);
	if (r < 0)
		return r;
	ssize_t total = shm_iov_total(iov, iovcnt);
	if (total <= 0 || ring->closed)
		return total < 0 ? total : 0;

	uint64_t fill = ring->head - ring->tail;
	if (fill < (uint64_t)total) {
		r = shm_ring_load_head(ring);
		if (r < 0)
			return r;
		fill = ring->head - ring->tail;
	}
	if (fill == 0) {
		/* Acquire: pairs with the release store of writer_closed in shm_ring_close(), so
		 * the head stored before the flag is visible to the reload below. */
		uint32_t closed = atomic_load_explicit(&ring->shared->writer_closed,
						       memory_order_acquire);
		if (closed == 0)
			return -EAGAIN;
		r = shm_ring_load_head(ring);
		if (r < 0)
			return r;
		fill = ring->head - ring->tail;
		if (fill == 0)
			return closed == SHM_RING_ABORTED ? -ECONNRESET : 0;
	}

	size_t n = (size_t)shm_min((uint64_t)total, fill);
	uint64_t pos = ring->tail;
	size_t left = n;
	for (int i = 0; left > 0; i++) {
		size_t chunk = (size_t)shm_min(iov[i].iov_len, left);
		if (chunk == 0)
			continue;
		shm_ring_copy_out(ring, pos, iov[i].iov_base, chunk);
		pos += chunk;
		left -= chunk;
	}
	if ((flags & SHM_RING_PEEK) == 0) {
		ring->tail += n;
		/* Release: pairs with the acquire load of tail in shm_ring_load_tail(): our
		 * copies out are done before the producer may overwrite the space. */
		atomic_store_explicit(&ring->shared->tail, ring->tail, memory_order_seq_cst);
		shm_ring_notify_published(ring);
	}
	return (ssize_t)n;
}

/* Returns bytes read, 0 at EOF, -EAGAIN, -ECONNRESET or -EINVAL. */
ssize_t shm_ring_read(struct shm_ring *ring, void *buf, size_t len, int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	return shm_ring_readv(ring, &iov, 1, flags);
}

/* Reloads the peer's counter. Returns 0 or -ECONNRESET. */
static int shm_ring_load_peer(struct shm_ring *ring)
{
	int r = shm_ring_check_reset(ring);
	if (r < 0)
		return r;
	return ring->role == SHM_RING_PRODUCER ? shm_ring_load_tail(ring) : shm_ring_load_head(ring);
}

/* Returns >= 0 or -ECONNRESET. */
ssize_t shm_ring_readable(struct shm_ring *ring)
{
	int r = shm_ring_load_peer(ring);
	if (r < 0)
		return r;
	return (ssize_t)(ring->head - ring->tail);
}

/* Returns >= 0 or -ECONNRESET. */
ssize_t shm_ring_writable(struct shm_ring *ring)
{
	int r = shm_ring_load_peer(ring);
	if (r < 0)
		return r;
	return (ssize_t)(ring->capacity - (ring->head - ring->tail));
}

bool shm_ring_peer_closed(const struct shm_ring *ring)
{
	const _Atomic uint32_t *flag = ring->role == SHM_RING_PRODUCER ? &ring->shared->reader_closed
								       : &ring->shared->writer_closed;
	/* Acquire: as in shm_ring_readv(), pairs with the release store in shm_ring_close(). */
	return atomic_load_explicit(flag, memory_order_acquire) != 0;
}

int shm_ring_ready(struct shm_ring *ring)
{
	if (shm_ring_load_peer(ring) < 0 || ring->closed || shm_ring_peer_closed(ring))
		return 1;
	if (ring->role == SHM_RING_PRODUCER)
		return ring->head - ring->tail < ring->capacity;
	return ring->head != ring->tail;
}

/* Returns 0 or -errno. */
int shm_ring_close(struct shm_ring *ring)
{
	_Atomic uint32_t *flag = ring->role == SHM_RING_PRODUCER ? &ring->shared->writer_closed
								 : &ring->shared->reader_closed;
	ring->closed = true;
	/* Release: pairs with the acquire loads in shm_ring_readv() and shm_ring_peer_closed():
	 * a consumer that sees writer_closed also sees every head stored before it. */
	atomic_store_explicit(flag, 1, memory_order_release);
	return shm_ring_notify(ring);
}

int shm_ring_abort(struct shm_ring *ring)
{
	if (ring->role != SHM_RING_PRODUCER)
		return -EINVAL;
	ring->closed = true;
	/* Release: pairs with the acquire loads in shm_ring_readv() and shm_ring_peer_closed(). */
	atomic_store_explicit(&ring->shared->writer_closed, SHM_RING_ABORTED, memory_order_release);
	return shm_ring_notify(ring);
}

bool shm_ring_peer_aborted(const struct shm_ring *ring)
{
	return ring->role == SHM_RING_CONSUMER &&
	       atomic_load_explicit(&ring->shared->writer_closed, memory_order_acquire) ==
		       SHM_RING_ABORTED;
}

void shm_ring_reset(struct shm_ring *ring)
{
	shm_ring_fail(ring, "reset by this side");
}

/* The slow path of shm_ring_notify: the peer sleeps. Returns 0 or -errno. */
static int shm_ring_wake(struct shm_ring *ring, struct futex_sem *sem, uint32_t waiting)
{
	int ret = 0;

	if ((waiting & FUTEX_SEM_COUNT_MASK) != 0) {
		ring->stats.futex_wakes++;
		int r = futex_sem_post(sem);
		if (r < 0)
			ret = r;
	}
	if ((waiting & FUTEX_SEM_EVENTFD) != 0 && ring->wake_fd >= 0) {
		/* What eventfd_write() does; EAGAIN means the counter is already nonzero. */
		uint64_t one = 1;
		ring->stats.eventfd_writes++;
		if (write(ring->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			ret = -errno;
	}
	return ret;
}

/* Returns 0 or -errno. */
/* shm_ring_notify after a seq_cst publication (see futex_sem_waiters_after_seq_cst). */
static int shm_ring_notify_published(struct shm_ring *ring)
{
	struct futex_sem *sem = ring->role == SHM_RING_PRODUCER ? &ring->shared->readable
								: &ring->shared->writable;
	uint32_t waiting = futex_sem_waiters_after_seq_cst(sem);
	if (waiting == 0)
		return 0;
	return shm_ring_wake(ring, sem, waiting);
}

int shm_ring_notify(struct shm_ring *ring)
{
	/* The peer waits on the other side's condition: a consumer for bytes, a producer for space. */
	struct futex_sem *sem = ring->role == SHM_RING_PRODUCER ? &ring->shared->readable
								: &ring->shared->writable;
	uint32_t waiting = futex_sem_waiters(sem);
	if (waiting == 0)
		return 0;
	return shm_ring_wake(ring, sem, waiting);
}

static int64_t shm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Returns 0 when ready, -ETIMEDOUT or -EINTR. */
/* What ends a wait: the ring is ready, or something else asks for the caller's attention. */
static inline bool shm_ring_wait_over(struct shm_ring *ring)
{
	if (shm_ring_ready(ring))
		return true;
	return ring->attention != NULL &&
	       atomic_load_explicit(ring->attention, memory_order_acquire) > ring->attention_seen;
}

static int shm_ring_wait(struct shm_ring *ring, struct futex_sem *sem, long spin_us, int timeout_ms)
{
	if (shm_ring_wait_over(ring))
		return 0;
	if (timeout_ms == 0)
		return -ETIMEDOUT;

	if (spin_us > 0) {
		/* A peer that answers within a few hundred nanoseconds costs not even a clock read. */
		for (int i = 0; i < 64; i++) {
			shm_cpu_relax();
			if (shm_ring_wait_over(ring))
				return 0;
		}
	}
	int64_t now = shm_now_ns();
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : now + (int64_t)timeout_ms * 1000000;
	if (spin_us > 0) {
		int64_t spin_end = now + (int64_t)spin_us * 1000;
		for (unsigned i = 1;; i++) {
			shm_cpu_relax();
			if (shm_ring_wait_over(ring))
				return 0;
			/*
			 * The clock is a vDSO call, cheap but not free: look every 64 turns. Then
			 * also yield: if the peer shares this CPU (a loaded 2-CPU machine), it
			 * runs now instead of after our whole spin; on an idle CPU sched_yield
			 * returns at once. A peer that answers within 64 turns costs no syscall.
			 */
			if ((i & 63) == 0) {
				now = shm_now_ns();
				if (now >= spin_end || now >= deadline)
					break;
				sched_yield();
			}
		}
	}
	for (;;) {
		/* Announce, then re-check: the lost-wakeup argument is in futex_sem.h. */
		uint32_t seq = futex_sem_prepare(sem);
		if (shm_ring_wait_over(ring)) {
			futex_sem_cancel(sem);
			return 0;
		}
		now = shm_now_ns();
		if (now >= deadline) {
			futex_sem_cancel(sem);
			return -ETIMEDOUT;
		}
		ring->stats.futex_waits++;
		int r = futex_sem_wait(&sem->seq, seq, deadline == INT64_MAX ? -1 : deadline - now);
		futex_sem_cancel(sem);
		if (r == -EINTR)
			return r;
		/*
		 * Woken: back to the caller even if not ready, which then looks at what else may
		 * have woken it (a fork handoff asked for on the session page). Spurious, seq
		 * already moved, or timed out: the loop re-checks.
		 */
		if (r == 0 && !shm_ring_wait_over(ring))
			return 0;
	}
}

/* Returns 0 when ready, -ETIMEDOUT, -EINTR or -EINVAL. */
int shm_ring_wait_readable(struct shm_ring *ring, long spin_us, int timeout_ms)
{
	if (ring->role != SHM_RING_CONSUMER)
		return -EINVAL;
	return shm_ring_wait(ring, &ring->shared->readable, spin_us, timeout_ms);
}

/* Returns 0 when ready, -ETIMEDOUT, -EINTR or -EINVAL. */
int shm_ring_wait_writable(struct shm_ring *ring, long spin_us, int timeout_ms)
{
	if (ring->role != SHM_RING_PRODUCER)
		return -EINVAL;
	return shm_ring_wait(ring, &ring->shared->writable, spin_us, timeout_ms);
}

/* The semaphore this side sleeps on. */
static struct futex_sem *shm_ring_own_sem(struct shm_ring *ring)
{
	return ring->role == SHM_RING_CONSUMER ? &ring->shared->readable : &ring->shared->writable;
}

int shm_ring_arm_eventfd(struct shm_ring *ring)
{
	futex_sem_arm_eventfd(shm_ring_own_sem(ring));
	return shm_ring_ready(ring);
}

void shm_ring_disarm_eventfd(struct shm_ring *ring)
{
	futex_sem_disarm_eventfd(shm_ring_own_sem(ring));
}

long shm_spin_default_us(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 1 ? SHM_SPIN_DEFAULT_US : 0;
}
