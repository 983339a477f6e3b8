/* Unit tests of the futex semaphore: waiting, timing out, and waking across threads and processes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "futex_sem.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void test_wait_on_a_changed_word_returns_eagain(void **state)
{
	_Atomic uint32_t word = 5;
	assert_int_equal(futex_sem_wait(&word, 4, -1), -EAGAIN);
}

static void test_wait_times_out(void **state)
{
	_Atomic uint32_t word = 0;
	int64_t start = now_ns();
	assert_int_equal(futex_sem_wait(&word, 0, 20 * 1000000), -ETIMEDOUT);
	assert_true(now_ns() - start >= 19 * 1000000);
}

static void test_wake_without_a_sleeper_wakes_nobody(void **state)
{
	_Atomic uint32_t word = 0;
	assert_int_equal(futex_sem_wake(&word), 0);
}

static void test_prepare_announces_and_cancel_withdraws(void **state)
{
	struct futex_sem sem = { 0 };

	assert_int_equal(futex_sem_waiters(&sem), 0);
	uint32_t seq = futex_sem_prepare(&sem);
	assert_int_equal(seq, 0);
	assert_int_equal(futex_sem_waiters(&sem) & FUTEX_SEM_COUNT_MASK, 1);
	futex_sem_cancel(&sem);
	assert_int_equal(futex_sem_waiters(&sem), 0);
}

static void test_eventfd_arming_is_a_separate_bit(void **state)
{
	struct futex_sem sem = { 0 };

	futex_sem_arm_eventfd(&sem);
	(void)futex_sem_prepare(&sem);
	assert_int_equal(futex_sem_waiters(&sem), FUTEX_SEM_EVENTFD | 1);
	futex_sem_disarm_eventfd(&sem);
	assert_int_equal(futex_sem_waiters(&sem), 1);
	futex_sem_cancel(&sem);
	assert_int_equal(futex_sem_waiters(&sem), 0);
}

static void test_post_bumps_seq_so_a_stale_wait_returns_at_once(void **state)
{
	struct futex_sem sem = { 0 };

	uint32_t seq = futex_sem_prepare(&sem);
	assert_int_equal(futex_sem_post(&sem), 0);
	assert_int_equal(futex_sem_wait(&sem.seq, seq, -1), -EAGAIN);
	futex_sem_cancel(&sem);
}

static void *post_after_a_while(void *arg)
{
	struct futex_sem *sem = arg;
	struct timespec pause = { .tv_nsec = 20 * 1000000 };
	nanosleep(&pause, NULL);
	futex_sem_post(sem);
	return NULL;
}

static void test_post_wakes_a_sleeping_thread(void **state)
{
	struct futex_sem sem = { 0 };
	pthread_t thread;

	uint32_t seq = futex_sem_prepare(&sem);
	assert_int_equal(pthread_create(&thread, NULL, post_after_a_while, &sem), 0);
	int r;
	do
		r = futex_sem_wait(&sem.seq, seq, 5LL * 1000000000);
	while (r == 0 && atomic_load(&sem.seq) == seq);
	futex_sem_cancel(&sem);
	pthread_join(thread, NULL);
	assert_true(r == 0 || r == -EAGAIN);
	assert_int_equal(atomic_load(&sem.seq), seq + 1);
}

/* The futex must be shared, not FUTEX_PRIVATE: the waker here is another process. */
static void test_post_wakes_a_sleeper_in_another_process(void **state)
{
	struct futex_sem *sem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(sem, MAP_FAILED);

	uint32_t seq = futex_sem_prepare(sem);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* Wait until the parent has announced (it has, before the fork), then post. */
		struct timespec pause = { .tv_nsec = 50 * 1000000 };
		nanosleep(&pause, NULL);
		_exit(futex_sem_post(sem) >= 0 ? 0 : 1);
	}
	int64_t start = now_ns();
	int r;
	do
		r = futex_sem_wait(&sem->seq, seq, 5LL * 1000000000);
	while (r == 0 && atomic_load(&sem->seq) == seq);
	int64_t waited = now_ns() - start;
	futex_sem_cancel(sem);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(r == 0 || r == -EAGAIN);
	assert_true(waited < 4LL * 1000000000);
	assert_int_equal(atomic_load(&sem->seq), seq + 1);
	munmap(sem, 4096);
}

static void on_alarm(int sig)
{
}

static void test_wait_interrupted_by_a_signal_returns_eintr(void **state)
{
	_Atomic uint32_t word = 0;
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	sigaction(SIGALRM, &sa, &old);
	struct itimerval it = { .it_value = { .tv_usec = 20000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	int r = futex_sem_wait(&word, 0, 5LL * 1000000000);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(r, -EINTR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_on_a_changed_word_returns_eagain),
		cmocka_unit_test(test_wait_times_out),
		cmocka_unit_test(test_wake_without_a_sleeper_wakes_nobody),
		cmocka_unit_test(test_prepare_announces_and_cancel_withdraws),
		cmocka_unit_test(test_eventfd_arming_is_a_separate_bit),
		cmocka_unit_test(test_post_bumps_seq_so_a_stale_wait_returns_at_once),
		cmocka_unit_test(test_post_wakes_a_sleeping_thread),
		cmocka_unit_test(test_post_wakes_a_sleeper_in_another_process),
		cmocka_unit_test(test_wait_interrupted_by_a_signal_returns_eintr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
