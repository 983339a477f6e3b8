/* The floor of `viaudit bench`: two processes ping-ponging through a shared mapping by spinning. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/*
 * Each counter gets 128 bytes: two 64-byte cache lines, because x86's adjacent-line
 * prefetcher fetches lines in pairs, and two counters in one pair would still bounce.
 */
#define SHMRAW_LINE 128
/*
 * A waiter that has seen no progress for this long yields its CPU, then spins again. A round
 * trip of the largest message takes well under this on an idle pair of CPUs, so the floor is
 * pure spinning; but when the scheduler puts both processes on one CPU (a loaded machine),
 * a waiter must give the CPU to its partner soon, not after a whole time slice.
 */
#define SHMRAW_YIELD_AFTER_NS 50000
/* The clock is read once per this many spins. */
#define SHMRAW_SPINS_PER_CLOCK 64
/* The value of `ping` that tells the echo to exit. */
#define SHMRAW_STOP UINT64_MAX

/* The shared mapping: one counter per direction, then the message in each direction. */
struct shmraw_page {
	_Alignas(SHMRAW_LINE) _Atomic uint64_t ping; /* written by the client only */
	_Alignas(SHMRAW_LINE) _Atomic uint64_t pong; /* written by the echo only */
	_Alignas(SHMRAW_LINE) char request[BENCH_MAX_SIZE];
	char reply[BENCH_MAX_SIZE];
};

static inline void shmraw_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Spins until `counter` holds `want` or SHMRAW_STOP, and returns that value. Busy spinning is
 * the point (the floor has no system call), but a waiter that sees nothing for 50 us yields
 * its CPU, so that both processes on one CPU still make progress, and checks that its
 * partner lives (`child` > 0: the echo; 0: the parent). Returns the value, or -ECHILD when the
 * partner is gone.
 */
static int64_t shmraw_wait(_Atomic uint64_t *counter, uint64_t want, pid_t child, pid_t parent)
{
	unsigned spins = 0;
	uint64_t since = 0;
	for (;;) {
		/* Acquire: pairs with the partner's release store of this counter, so that the
		 * message it wrote before the store is visible once the count is. */
		uint64_t seen = atomic_load_explicit(counter, memory_order_acquire);
		if (seen == want || seen == SHMRAW_STOP)
			return seen == SHMRAW_STOP ? INT64_MAX : (int64_t)seen;
		shmraw_pause();
		if (++spins % SHMRAW_SPINS_PER_CLOCK != 0)
			continue;
		uint64_t now = bench_now_ns();
		if (since == 0)
			since = now;
		if (now - since < SHMRAW_YIELD_AFTER_NS)
			continue;
		since = 0;
		sched_yield();
		if (child > 0 && waitpid(child, NULL, WNOHANG) != 0)
			return -ECHILD;
		if (child == 0 && getppid() != parent)
			return -ECHILD;
	}
}

/* The echo: copies each request to the reply and bumps `pong`. Never returns. */
static void shmraw_echo(struct shmraw_page *page, size_t size, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	for (uint64_t sequence = 1;; sequence++) {
		int64_t seen = shmraw_wait(&page->ping, sequence, 0, parent);
		if (seen < 0)
			_exit(1);
		if (seen == INT64_MAX)
			_exit(0);
		memcpy(page->reply, page->request, size);
		/* Release: pairs with the client's acquire load of pong in shmraw_wait. */
		atomic_store_explicit(&page->pong, sequence, memory_order_release);
	}
}

int bench_shmraw_pingpong(size_t size, double seconds, double warmup, struct bench_result *result)
{
	if (size == 0 || size > BENCH_MAX_SIZE)
		return -EINVAL;
	struct shmraw_page *page = mmap(NULL, sizeof(*page), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return -errno;
	char *out = calloc(1, size), *in = malloc(size);
	uint32_t *samples = malloc(BENCH_MAX_SAMPLES * sizeof(uint32_t));
	int err = 0;
	pid_t child = -1;
	if (!out || !in || !samples) {
		err = -ENOMEM;
		goto done;
	}
	pid_t parent = getpid();
	fflush(NULL);
	child = fork();
	if (child < 0) {
		err = -errno;
		goto done;
	}
	if (child == 0)
		shmraw_echo(page, size, parent);

	size_t count = 0;
	uint64_t start = bench_now_ns();
	uint64_t warm_end = start + (uint64_t)(warmup * 1e9);
	uint64_t deadline = start + (uint64_t)(seconds * 1e9);
	uint64_t before = start;
	size_t stamp = size < sizeof(uint64_t) ? size : sizeof(uint64_t);
	for (uint64_t sequence = 1;; sequence++) {
		memcpy(out, &sequence, stamp);
		memcpy(page->request, out, size);
		/* Release: pairs with the echo's acquire load of ping in shmraw_wait. */
		atomic_store_explicit(&page->ping, sequence, memory_order_release);
		int64_t seen = shmraw_wait(&page->pong, sequence, child, parent);
		if (seen < 0) {
			err = (int)seen;
			child = -1; /* reaped by shmraw_wait */
			goto done;
		}
		memcpy(in, page->reply, size);
		uint64_t after = bench_now_ns();
		if (memcmp(in, out, stamp) != 0) {
			err = -EBADMSG;
			goto done;
		}
		bool over = bench_sample(samples, &count, before, after, warm_end, deadline);
		before = after;
		if (over)
			break;
	}
	bench_result_set_percentiles(result, samples, count);
	result->measured = count > 0;
done:
	if (child > 0) {
		atomic_store_explicit(&page->ping, SHMRAW_STOP, memory_order_release);
		int status;
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
	}
	free(samples);
	free(in);
	free(out);
	munmap(page, sizeof(*page));
	return err;
}
