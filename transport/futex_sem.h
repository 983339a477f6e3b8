/* A semaphore in memory shared by two processes: a futex word, and a word where waiters announce themselves so that a waker makes a system call only when someone sleeps. */
#ifndef VI_TRANSPORT_FUTEX_SEM_H
#define VI_TRANSPORT_FUTEX_SEM_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * The protocol (an eventcount). A waiter:
 *
 *     seq = futex_sem_prepare(sem);      announce, full fence, snapshot seq
 *     if (condition holds) { futex_sem_cancel(sem); done; }
 *     futex_sem_wait(&sem->seq, seq, timeout_ns);
 *     futex_sem_cancel(sem);             then re-check the condition
 *
 * A waker, after publishing what makes the condition true:
 *
 *     if (futex_sem_waiters(sem) & FUTEX_SEM_COUNT_MASK)   full fence, then one load
 *             futex_sem_post(sem);                         bump seq, FUTEX_WAKE
 *
 * Why no wakeup is lost. The waiter's announcement and the waker's publication are each
 * followed by a sequentially consistent fence, and each side then loads what the other
 * stored (Dekker's pattern). Of the two fences one comes first in the single total order of
 * seq_cst fences, so either the waiter's re-check sees the publication (it does not sleep),
 * or the waker's load sees the announcement (it posts). When the waker posts, it bumps seq
 * before FUTEX_WAKE: if the waiter snapshotted seq after the bump, the release/acquire pair
 * on seq makes the publication visible to its re-check; if before, the kernel's FUTEX_WAIT
 * compares seq with the stale snapshot under its hash-bucket lock and returns at once
 * (EAGAIN), or the waiter is already queued when FUTEX_WAKE looks. A waiter therefore never
 * sleeps past a publication; it may wake spuriously, which callers tolerate by looping.
 *
 * The fast path of a waker is one fence and one load of a cache line that only changes when
 * someone goes to sleep: no system call per message while the peer is awake.
 *
 * The peer is not trusted: it may write any value into both words at any time. Nothing here
 * uses them as sizes or indexes; the worst a peer can do is cause spurious wakeups or make
 * its own side sleep until its timeout.
 */
struct futex_sem {
	/* The futex word: bumped by wakers before FUTEX_WAKE. */
	_Atomic uint32_t seq;
	/* FUTEX_SEM_COUNT_MASK: threads sleeping in futex_sem_wait; FUTEX_SEM_EVENTFD: the
	 * waiting side sleeps in epoll/poll and wants its eventfd written. Written by waiters. */
	_Atomic uint32_t waiting;
};

#define FUTEX_SEM_EVENTFD 0x80000000u
#define FUTEX_SEM_COUNT_MASK 0x7fffffffu

/*
 * Sleeps while *word == expected, for at most timeout_ns (< 0: no limit). A shared (not
 * FUTEX_PRIVATE) futex, so the waker may be another process mapping the same memory.
 * Returns 0 when woken (or spuriously), -EAGAIN when *word != expected on entry, -ETIMEDOUT,
 * -EINTR when a signal handler ran, or another -errno.
 */
int futex_sem_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wakes every thread sleeping on word. Returns how many were woken, or -errno. */
int futex_sem_wake(_Atomic uint32_t *word);

/* Announces one sleeper and returns the seq snapshot to pass to futex_sem_wait. */
uint32_t futex_sem_prepare(struct futex_sem *sem);

/* Withdraws the announcement futex_sem_prepare made. */
void futex_sem_cancel(struct futex_sem *sem);

/* Announces that the waiting side sleeps in epoll/poll on its eventfd. */
void futex_sem_arm_eventfd(struct futex_sem *sem);

/* Withdraws futex_sem_arm_eventfd. */
void futex_sem_disarm_eventfd(struct futex_sem *sem);

/*
 * The waker's check, made after publishing: a full fence, then the waiting word. Returns
 * the FUTEX_SEM_* bits; 0 means nobody sleeps and no system call is needed.
 */
static inline uint32_t futex_sem_waiters(struct futex_sem *sem)
{
	/* Partner: the fence in futex_sem_prepare() / futex_sem_arm_eventfd() (see above). */
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&sem->waiting, memory_order_relaxed);
}

/*
 * The waker's check when its publication was itself a seq_cst store (an x86 xchg, an
 * aarch64 stlr): that store orders like the fence above, so a seq_cst load suffices and
 * the data path pays one barrier per message instead of two.
 */
static inline uint32_t futex_sem_waiters_after_seq_cst(struct futex_sem *sem)
{
	/* Partner: the fence in futex_sem_prepare() / futex_sem_arm_eventfd(). */
	return atomic_load_explicit(&sem->waiting, memory_order_seq_cst);
}

/* Bumps seq and wakes its sleepers. Returns how many were woken, or -errno. */
int futex_sem_post(struct futex_sem *sem);

#endif
