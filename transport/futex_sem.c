/* The futex semaphore of the same-host transport: sleeping and waking across two processes. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex_sem.h"

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "a futex word is 32 bits");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared-memory atomics must be lock-free");

/* Returns 0 when woken (or spuriously), -EAGAIN, -ETIMEDOUT, -EINTR or another -errno. */
int futex_sem_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts;
	struct timespec *timeout = NULL;

	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		timeout = &ts;
	}
	/* FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the key is the shared page, not this mm. */
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, timeout, NULL, 0);
	if (r < 0)
		return -errno;
	return 0;
}

/* Returns how many were woken, or -errno. */
int futex_sem_wake(_Atomic uint32_t *word)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	if (r < 0)
		return -errno;
	return (int)r;
}

uint32_t futex_sem_prepare(struct futex_sem *sem)
{
	atomic_fetch_add_explicit(&sem->waiting, 1, memory_order_relaxed);
	/* Partner: the fence in futex_sem_waiters(), run by the waker after it publishes. */
	atomic_thread_fence(memory_order_seq_cst);
	/* Acquire: pairs with the release bump of seq in futex_sem_post(), so a waiter that
	 * reads the bumped seq also sees what the waker published before posting. */
	return atomic_load_explicit(&sem->seq, memory_order_acquire);
}

void futex_sem_cancel(struct futex_sem *sem)
{
	atomic_fetch_sub_explicit(&sem->waiting, 1, memory_order_relaxed);
}

void futex_sem_arm_eventfd(struct futex_sem *sem)
{
	atomic_fetch_or_explicit(&sem->waiting, FUTEX_SEM_EVENTFD, memory_order_relaxed);
	/* Partner: the fence in futex_sem_waiters(), as in futex_sem_prepare(). */
	atomic_thread_fence(memory_order_seq_cst);
}

void futex_sem_disarm_eventfd(struct futex_sem *sem)
{
	atomic_fetch_and_explicit(&sem->waiting, ~FUTEX_SEM_EVENTFD, memory_order_relaxed);
}

/* Returns how many were woken, or -errno. */
int futex_sem_post(struct futex_sem *sem)
{
	/* Release: pairs with the acquire load of seq in futex_sem_prepare(). */
	atomic_fetch_add_explicit(&sem->seq, 1, memory_order_release);
	return futex_sem_wake(&sem->seq);
}
