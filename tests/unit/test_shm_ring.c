/* Unit tests of the shared-memory ring: the byte stream, half-close, waiting and waking, and a hostile peer. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm_segment.h"

#define RING_SIZE ((size_t)4096)

/*
 * The library's syscall() references are linked to this wrapper (-Wl,--wrap=syscall), so
 * the tests count the futex system calls actually made, not what the ring says it made.
 */
static _Atomic long futex_syscalls;

long __real_syscall(long number, ...);
long __wrap_syscall(long number, ...);
long __wrap_syscall(long number, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_futex)
		futex_syscalls++;
	return __real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic for a given seed. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void fill_pattern(unsigned char *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rng_next(&seed) >> 56);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A segment in one process: the connector's rings (c*) and the acceptor's (a*). */
struct fixture {
	void *base;
	size_t size;
	struct shm_segment_control *control;
	struct shm_ring ctx, crx, atx, arx;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	f->size = (size_t)shm_segment_size(RING_SIZE);
	f->base = aligned_alloc(4096, f->size);
	if (f->base == NULL || shm_segment_init(f->base, f->size, RING_SIZE) != 0)
		return -1;
	f->control = f->base;
	if (shm_segment_attach(f->base, f->size, SHM_SEGMENT_CONNECTOR, &f->ctx, &f->crx) != 0 ||
	    shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->atx, &f->arx) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->base);
	free(f);
	return 0;
}

/* The shared part of ring 0, which the connector writes and the acceptor reads. */
static struct shm_ring_shared *ring0(struct fixture *f)
{
	return &f->control->rings[0];
}

static void test_write_then_read_returns_the_same_bytes(void **state)
{
	struct fixture *f = *state;
	char buf[32];

	assert_int_equal(shm_ring_write(&f->ctx, "hello, ring", 11), 11);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 11);
	assert_memory_equal(buf, "hello, ring", 11);
}

static void test_write_and_read_wrap_around_the_end_of_the_buffer(void **state)
{
	struct fixture *f = *state;
	unsigned char in[3000], out[3000];

	memset(in, 1, sizeof(in));
	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), sizeof(in));
	assert_int_equal(shm_ring_read(&f->arx, out, sizeof(out), 0), sizeof(out));
	/* The second 3000 bytes start at offset 3000 of 4096 and wrap. */
	fill_pattern(in, sizeof(in), 7);
	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), sizeof(in));
	assert_int_equal(shm_ring_read(&f->arx, out, sizeof(out), 0), sizeof(out));
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(f->arx.tail, 6000);
}

static void test_write_to_a_nearly_full_ring_returns_what_fit(void **state)
{
	struct fixture *f = *state;
	unsigned char in[RING_SIZE] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, in, 4000), 4000);
	assert_int_equal(shm_ring_write(&f->ctx, in, 200), 96);
}

static void test_write_to_a_full_ring_returns_eagain(void **state)
{
	struct fixture *f = *state;
	unsigned char in[RING_SIZE] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), RING_SIZE);
	assert_int_equal(shm_ring_write(&f->ctx, in, 1), -EAGAIN);
}

static void test_write_after_a_read_uses_the_freed_space(void **state)
{
	struct fixture *f = *state;
	unsigned char in[RING_SIZE] = { 0 }, out[100];

	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), RING_SIZE);
	assert_int_equal(shm_ring_read(&f->arx, out, sizeof(out), 0), 100);
	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), 100);
}

static void test_read_of_an_empty_ring_returns_eagain(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -EAGAIN);
}

static void test_read_returns_what_is_there_when_asked_for_more(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	assert_int_equal(shm_ring_write(&f->ctx, "abc", 3), 3);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 3);
}

static void test_read_of_less_than_is_there_leaves_the_rest(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "abcdef", 6), 6);
	assert_int_equal(shm_ring_read(&f->arx, buf, 2, 0), 2);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "cdef", 4);
}

static void test_peek_does_not_consume(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "peek", 4), 4);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), SHM_RING_PEEK), 4);
	assert_memory_equal(buf, "peek", 4);
	assert_int_equal(shm_ring_readable(&f->arx), 4);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "peek", 4);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -EAGAIN);
}

static void test_read_refuses_unknown_flags(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0x100), -EINVAL);
}

static void test_writev_across_the_wrap_keeps_the_order(void **state)
{
	struct fixture *f = *state;
	unsigned char skip[4000] = { 0 }, a[50], b[100], c[10], out[160];

	assert_int_equal(shm_ring_write(&f->ctx, skip, sizeof(skip)), sizeof(skip));
	assert_int_equal(shm_ring_read(&f->arx, skip, sizeof(skip), 0), sizeof(skip));
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	struct iovec iov[] = { { a, sizeof(a) }, { NULL, 0 }, { b, sizeof(b) }, { c, sizeof(c) } };
	/* 4000 + 50 + 100 crosses 4096 inside b. */
	assert_int_equal(shm_ring_writev(&f->ctx, iov, 4), 160);
	assert_int_equal(shm_ring_read(&f->arx, out, sizeof(out), 0), 160);
	assert_memory_equal(out, a, 50);
	assert_memory_equal(out + 50, b, 100);
	assert_memory_equal(out + 150, c, 10);
}

static void test_readv_across_the_wrap_fills_each_buffer_in_turn(void **state)
{
	struct fixture *f = *state;
	unsigned char skip[4090] = { 0 }, in[40], a[5], b[20], c[100];

	assert_int_equal(shm_ring_write(&f->ctx, skip, sizeof(skip)), sizeof(skip));
	assert_int_equal(shm_ring_read(&f->arx, skip, sizeof(skip), 0), sizeof(skip));
	fill_pattern(in, sizeof(in), 3);
	assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), sizeof(in));
	struct iovec iov[] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	assert_int_equal(shm_ring_readv(&f->arx, iov, 3, 0), 40);
	assert_memory_equal(a, in, 5);
	assert_memory_equal(b, in + 5, 20);
	assert_memory_equal(c, in + 25, 15);
}

static void test_writev_of_more_than_fits_returns_what_fit(void **state)
{
	struct fixture *f = *state;
	static unsigned char big[3000];
	struct iovec iov[] = { { big, sizeof(big) }, { big, sizeof(big) } };

	assert_int_equal(shm_ring_writev(&f->ctx, iov, 2), RING_SIZE);
}

static void test_writev_refuses_a_bad_iovec_count(void **state)
{
	struct fixture *f = *state;
	struct iovec iov[] = { { "x", 1 } };

	assert_int_equal(shm_ring_writev(&f->ctx, iov, -1), -EINVAL);
	assert_int_equal(shm_ring_writev(&f->ctx, iov, IOV_MAX + 1), -EINVAL);
	assert_int_equal(shm_ring_readv(&f->arx, iov, -1, 0), -EINVAL);
}

static void test_writev_refuses_lengths_that_overflow(void **state)
{
	struct fixture *f = *state;
	struct iovec iov[] = { { "x", SSIZE_MAX }, { "y", 2 } };

	assert_int_equal(shm_ring_writev(&f->ctx, iov, 2), -EINVAL);
}

static void test_zero_length_write_and_read_return_zero(void **state)
{
	struct fixture *f = *state;
	char buf[1] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, buf, 0), 0);
	assert_int_equal(shm_ring_read(&f->arx, buf, 0, 0), 0);
	assert_int_equal(shm_ring_writev(&f->ctx, NULL, 0), 0);
}

static void test_read_returns_eof_once_the_writer_closed_and_the_ring_is_drained(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "last", 4), 4);
	assert_int_equal(shm_ring_close(&f->ctx), 0);
	assert_true(shm_ring_peer_closed(&f->arx));
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 4);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 0);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 0);
}

static void test_write_after_own_close_returns_epipe(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shm_ring_close(&f->ctx), 0);
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), -EPIPE);
}

static void test_write_after_the_reader_closed_returns_epipe(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shm_ring_close(&f->arx), 0);
	assert_true(shm_ring_peer_closed(&f->ctx));
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), -EPIPE);
}

static void test_read_after_own_close_returns_eof(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), 1);
	assert_int_equal(shm_ring_close(&f->arx), 0);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 0);
}

static void test_closing_one_direction_leaves_the_other_open(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_close(&f->ctx), 0);
	assert_int_equal(shm_ring_write(&f->atx, "back", 4), 4);
	assert_int_equal(shm_ring_read(&f->crx, buf, sizeof(buf), 0), 4);
}

static void test_readable_and_writable_count_the_bytes_in_flight(void **state)
{
	struct fixture *f = *state;
	char buf[100] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, buf, 100), 100);
	assert_int_equal(shm_ring_readable(&f->arx), 100);
	assert_int_equal(shm_ring_readable(&f->ctx), 100);
	assert_int_equal(shm_ring_writable(&f->ctx), RING_SIZE - 100);
	assert_int_equal(shm_ring_read(&f->arx, buf, 30, 0), 30);
	assert_int_equal(shm_ring_readable(&f->ctx), 70);
	assert_int_equal(shm_ring_writable(&f->ctx), RING_SIZE - 70);
}

static void test_calls_on_the_wrong_side_return_einval(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->arx, "x", 1), -EINVAL);
	assert_int_equal(shm_ring_read(&f->ctx, buf, sizeof(buf), 0), -EINVAL);
	assert_int_equal(shm_ring_wait_readable(&f->ctx, 0, 0), -EINVAL);
	assert_int_equal(shm_ring_wait_writable(&f->arx, 0, 0), -EINVAL);
}

static void test_counters_work_across_the_64_bit_wrap(void **state)
{
	struct fixture *f = *state;
	uint64_t start = UINT64_MAX - 1000;
	unsigned char in[3000], out[3000];

	atomic_store(&ring0(f)->head, start);
	atomic_store(&ring0(f)->tail, start);
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_CONNECTOR, &f->ctx, &f->crx), 0);
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->atx, &f->arx), 0);
	for (int round = 0; round < 3; round++) {
		fill_pattern(in, sizeof(in), (uint64_t)round + 1);
		assert_int_equal(shm_ring_write(&f->ctx, in, sizeof(in)), sizeof(in));
		assert_int_equal(shm_ring_read(&f->arx, out, sizeof(out), 0), sizeof(out));
		assert_memory_equal(in, out, sizeof(in));
	}
	assert_true(f->arx.tail < start);
}

/* ---- a hostile peer: the test writes the shared words itself ---- */

static void assert_connection_failed(struct fixture *f)
{
	char buf[8];

	assert_int_not_equal(atomic_load(&f->control->reset), 0);
	/* Sticky, and on every side and direction. */
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -ECONNRESET);
	assert_int_equal(shm_ring_write(&f->atx, "x", 1), -ECONNRESET);
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), -ECONNRESET);
	assert_int_equal(shm_ring_read(&f->crx, buf, sizeof(buf), 0), -ECONNRESET);
	assert_int_equal(shm_ring_readable(&f->arx), -ECONNRESET);
	assert_int_equal(shm_ring_wait_readable(&f->arx, 0, -1), 0);
}

static void test_ring_rejects_head_past_capacity(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	atomic_store(&ring0(f)->head, RING_SIZE + 1);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -ECONNRESET);
	assert_true(f->arx.broken);
	/* Putting the counter back does not revive the connection. */
	atomic_store(&ring0(f)->head, 1);
	assert_connection_failed(f);
}

static void test_ring_accepts_head_exactly_at_capacity(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	atomic_store(&ring0(f)->head, RING_SIZE);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 8);
	assert_int_equal(shm_ring_readable(&f->arx), RING_SIZE - 8);
}

static void test_ring_rejects_head_moved_backward(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "abcdef", 6), 6);
	assert_int_equal(shm_ring_read(&f->arx, buf, 2, SHM_RING_PEEK), 2);
	atomic_store(&ring0(f)->head, 3);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -ECONNRESET);
	assert_connection_failed(f);
}

static void test_ring_rejects_tail_moved_backward(void **state)
{
	struct fixture *f = *state;
	char buf[RING_SIZE] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, buf, 100), 100);
	assert_int_equal(shm_ring_read(&f->arx, buf, 100, 0), 100);
	assert_int_equal(shm_ring_write(&f->ctx, buf, RING_SIZE), RING_SIZE);
	/* The connector saw tail 100 when it filled the ring; now the peer moves it back. */
	atomic_store(&ring0(f)->tail, 50);
	assert_int_equal(shm_ring_write(&f->ctx, buf, 1), -ECONNRESET);
	assert_true(f->ctx.broken);
	assert_connection_failed(f);
}

static void test_ring_rejects_tail_past_head(void **state)
{
	struct fixture *f = *state;
	char buf[RING_SIZE] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, buf, RING_SIZE), RING_SIZE);
	atomic_store(&ring0(f)->tail, RING_SIZE + 1);
	assert_int_equal(shm_ring_writable(&f->ctx), -ECONNRESET);
	assert_connection_failed(f);
}

static void test_ring_rejects_huge_counters(void **state)
{
	struct fixture *f = *state;

	atomic_store(&ring0(f)->head, UINT64_MAX);
	assert_int_equal(shm_ring_readable(&f->arx), -ECONNRESET);
	assert_connection_failed(f);
}

static void test_ring_rejects_a_huge_tail(void **state)
{
	struct fixture *f = *state;
	char buf[RING_SIZE] = { 0 };

	assert_int_equal(shm_ring_write(&f->ctx, buf, RING_SIZE), RING_SIZE);
	atomic_store(&ring0(f)->tail, UINT64_MAX - 5);
	assert_int_equal(shm_ring_write(&f->ctx, buf, 1), -ECONNRESET);
	assert_connection_failed(f);
}

static void test_peer_reset_fails_both_directions(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shm_ring_write(&f->ctx, "data", 4), 4);
	shm_ring_reset(&f->ctx);
	/* Even with bytes waiting, as TCP after a RST. */
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), -ECONNRESET);
	assert_connection_failed(f);
}

static void test_a_peer_writing_the_reset_word_fails_the_connection(void **state)
{
	struct fixture *f = *state;

	atomic_store(&f->control->reset, 0x12345678);
	assert_int_equal(shm_ring_write(&f->atx, "x", 1), -ECONNRESET);
	assert_true(f->atx.broken);
}

static void test_garbage_in_the_closed_flag_is_only_a_close(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	atomic_store(&ring0(f)->writer_closed, 0xdeadbeef);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 0);
	assert_false(f->arx.broken);
}

static void test_garbage_in_the_waiting_word_only_costs_a_wakeup(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	atomic_store(&ring0(f)->readable.waiting, 0xffffffffu);
	assert_int_equal(shm_ring_write(&f->ctx, "abc", 3), 3);
	assert_int_equal(f->ctx.stats.futex_wakes, 1);
	/* wake_fd is -1: no eventfd is written whatever the bit says. */
	assert_int_equal(f->ctx.stats.eventfd_writes, 0);
	assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), 3);
}

/*
 * Rings whose pieces are separate heap blocks (shared part, data of exactly capacity
 * bytes, reset word), so that under AddressSanitizer any access outside the data area is a
 * reported error, not a silent read of a neighbour.
 */
struct loose_ring {
	struct shm_ring_shared *shared;
	unsigned char *data;
	_Atomic uint32_t *reset;
	struct shm_ring producer, consumer;
	_Atomic int stop;
	_Atomic long scribbles;
	uint64_t seed;
};

static void loose_ring_open(struct loose_ring *lr)
{
	lr->shared = aligned_alloc(SHM_CACHE_LINE, sizeof(*lr->shared));
	lr->data = malloc(RING_SIZE);
	lr->reset = calloc(1, sizeof(*lr->reset));
	assert_non_null(lr->shared);
	assert_non_null(lr->data);
	assert_non_null(lr->reset);
	memset(lr->shared, 0, sizeof(*lr->shared));
	memset(lr->data, 0, RING_SIZE);
	assert_int_equal(shm_ring_init(&lr->producer, lr->shared, lr->data, RING_SIZE, SHM_RING_PRODUCER,
				       lr->reset, NULL), 0);
	assert_int_equal(shm_ring_init(&lr->consumer, lr->shared, lr->data, RING_SIZE, SHM_RING_CONSUMER,
				       lr->reset, NULL), 0);
}

static void loose_ring_close(struct loose_ring *lr)
{
	free(lr->shared);
	free(lr->data);
	free((void *)lr->reset);
}

/* Picks a counter value: mostly near `near`, sometimes anywhere. */
static uint64_t hostile_counter(uint64_t *seed, uint64_t near)
{
	uint64_t r = rng_next(seed);
	switch (r >> 61) {
	case 0:
		return rng_next(seed);
	case 1:
		return UINT64_MAX - (r >> 60);
	case 2:
		return near - (r >> 52);
	default:
		return near + ((r >> 16) % (RING_SIZE + 2));
	}
}

/* The hostile producer: rewrites head, the closed flag and the data as fast as it can. */
static void *scribble_producer_side(void *arg)
{
	struct loose_ring *lr = arg;
	uint64_t seed = lr->seed;

	while (!atomic_load_explicit(&lr->stop, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&lr->scribbles, 1, memory_order_relaxed);
		uint64_t r = rng_next(&seed);
		uint64_t tail = atomic_load_explicit(&lr->shared->tail, memory_order_relaxed);
		switch (r >> 62) {
		case 0:
		case 1:
			atomic_store_explicit(&lr->shared->head, hostile_counter(&seed, tail), memory_order_release);
			break;
		case 2:
			lr->data[(r >> 8) % RING_SIZE] = (unsigned char)r;
			break;
		case 3:
			atomic_store_explicit(&lr->shared->writer_closed, (r >> 40) % 4 == 0, memory_order_relaxed);
			atomic_store_explicit(&lr->shared->readable.waiting, (uint32_t)(r >> 20), memory_order_relaxed);
			break;
		}
	}
	return NULL;
}

/* The hostile consumer: rewrites tail and the closed flag. */
static void *scribble_consumer_side(void *arg)
{
	struct loose_ring *lr = arg;
	uint64_t seed = lr->seed;

	while (!atomic_load_explicit(&lr->stop, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&lr->scribbles, 1, memory_order_relaxed);
		uint64_t r = rng_next(&seed);
		uint64_t head = atomic_load_explicit(&lr->shared->head, memory_order_relaxed);
		/* Decisions from the high bits: xorshift64*'s low bits are weak. */
		if (r >> 61 == 0)
			atomic_store_explicit(&lr->shared->reader_closed, (r >> 40) % 4 == 0, memory_order_relaxed);
		else
			atomic_store_explicit(&lr->shared->tail, hostile_counter(&seed, head - RING_SIZE),
					      memory_order_release);
	}
	return NULL;
}

/*
 * Whether the honest side should go on: at least 200000 operations, and until the scribbler
 * has had as many turns and both outcomes were seen (threads may be descheduled on a busy
 * machine), within 20 s.
 */
static bool keep_going(struct loose_ring *lr, long i, int64_t started, long resets, long bytes)
{
	if (now_ns() - started > 20LL * 1000000000)
		return false;
	return i < 200000 || atomic_load(&lr->scribbles) < 200000 || resets == 0 || bytes == 0;
}

/* Starts over after a detected corruption, while the scribbler keeps going. */
static void loose_ring_restart(struct loose_ring *lr, struct shm_ring *ring, enum shm_ring_role role)
{
	atomic_store(lr->reset, 0);
	while (shm_ring_init(ring, lr->shared, lr->data, RING_SIZE, role, lr->reset, NULL) != 0)
		;
}

static void test_head_changing_between_reads_never_escapes_the_buffer(void **state)
{
	struct loose_ring lr = { .seed = 11 };
	pthread_t thread;
	unsigned char buf[RING_SIZE + 64];
	struct iovec iov[3];
	uint64_t seed = 5;
	long resets = 0, bytes = 0;

	loose_ring_open(&lr);
	assert_int_equal(pthread_create(&thread, NULL, scribble_producer_side, &lr), 0);
	int64_t started = now_ns();
	for (long i = 0; keep_going(&lr, i, started, resets, bytes); i++) {
		uint64_t r = rng_next(&seed);
		size_t len = (size_t)(r % (RING_SIZE + 16));
		int flags = (r >> 20) % 4 == 0 ? SHM_RING_PEEK : 0;
		uint64_t before = lr.consumer.tail;
		ssize_t n;

		memset(buf, 0xee, sizeof(buf));
		if ((r >> 24) % 2 == 0) {
			n = shm_ring_read(&lr.consumer, buf, len, flags);
		} else {
			size_t a = len / 3, b = len / 2;
			iov[0] = (struct iovec){ buf, a };
			iov[1] = (struct iovec){ buf + a, b };
			iov[2] = (struct iovec){ buf + a + b, len - a - b };
			n = shm_ring_readv(&lr.consumer, iov, 3, flags);
		}
		if (n == -ECONNRESET) {
			assert_true(lr.consumer.broken);
			assert_int_equal(shm_ring_read(&lr.consumer, buf, len, 0), -ECONNRESET);
			resets++;
			loose_ring_restart(&lr, &lr.consumer, SHM_RING_CONSUMER);
			continue;
		}
		assert_true(n == -EAGAIN || (n >= 0 && (size_t)n <= len && (size_t)n <= RING_SIZE));
		if (n > 0)
			bytes += n;
		/* Nothing was written past what was returned. */
		for (size_t j = n > 0 ? (size_t)n : 0; j < sizeof(buf); j++)
			assert_int_equal(buf[j], 0xee);
		uint64_t moved = lr.consumer.tail - before;
		assert_true(moved == (n > 0 && flags == 0 ? (uint64_t)n : 0));
		assert_true(lr.consumer.head - lr.consumer.tail <= RING_SIZE);
	}
	atomic_store(&lr.stop, 1);
	pthread_join(thread, NULL);
	loose_ring_close(&lr);
	/* The scribbler produced both valid and invalid heads. */
	assert_true(resets > 0);
	assert_true(bytes > 0);
}

static void test_tail_changing_between_writes_never_escapes_the_buffer(void **state)
{
	struct loose_ring lr = { .seed = 13 };
	pthread_t thread;
	unsigned char buf[RING_SIZE + 64];
	uint64_t seed = 9;
	long resets = 0, bytes = 0;

	memset(buf, 0x5a, sizeof(buf));
	loose_ring_open(&lr);
	assert_int_equal(pthread_create(&thread, NULL, scribble_consumer_side, &lr), 0);
	int64_t started = now_ns();
	for (long i = 0; keep_going(&lr, i, started, resets, bytes); i++) {
		uint64_t r = rng_next(&seed);
		size_t len = (size_t)(r % (RING_SIZE + 16));
		uint64_t before = lr.producer.head;
		ssize_t n = shm_ring_write(&lr.producer, buf, len);

		if (n == -ECONNRESET) {
			assert_true(lr.producer.broken);
			resets++;
			loose_ring_restart(&lr, &lr.producer, SHM_RING_PRODUCER);
			continue;
		}
		if (n == -EPIPE)
			continue;
		assert_true(n == -EAGAIN || (n >= 0 && (size_t)n <= len && (size_t)n <= RING_SIZE));
		if (n > 0)
			bytes += n;
		assert_true(lr.producer.head - before == (n > 0 ? (uint64_t)n : 0));
		assert_true(lr.producer.head - lr.producer.tail <= RING_SIZE);
	}
	atomic_store(&lr.stop, 1);
	pthread_join(thread, NULL);
	loose_ring_close(&lr);
	assert_true(resets > 0);
	assert_true(bytes > 0);
}

/* ---- waiting and waking ---- */

static void test_wait_readable_times_out_on_an_empty_ring(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_ring_wait_readable(&f->arx, 0, 20), -ETIMEDOUT);
	assert_true(f->arx.stats.futex_waits >= 1);
	/* The announcement was withdrawn. */
	assert_int_equal(atomic_load(&ring0(f)->readable.waiting), 0);
}

static void test_wait_with_zero_timeout_only_checks(void **state)
{
	struct fixture *f = *state;
	long before = futex_syscalls;

	assert_int_equal(shm_ring_wait_readable(&f->arx, 1000, 0), -ETIMEDOUT);
	assert_int_equal(futex_syscalls, before);
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), 1);
	assert_int_equal(shm_ring_wait_readable(&f->arx, 1000, 0), 0);
}

static void test_wait_returns_at_once_after_the_peer_closed(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shm_ring_close(&f->ctx), 0);
	assert_int_equal(shm_ring_wait_readable(&f->arx, 0, -1), 0);
	assert_int_equal(shm_ring_close(&f->crx), 0);
	assert_int_equal(shm_ring_wait_writable(&f->atx, 0, -1), 0);
}

struct delayed_write {
	struct fixture *f;
	struct shm_ring *ring;
	struct futex_sem *sem; /* wait until someone sleeps on it, if not NULL */
	int read_instead;
};

static void *write_when_asleep(void *arg)
{
	struct delayed_write *d = arg;
	char buf[64] = "wake up";

	if (d->sem != NULL) {
		while (atomic_load(&d->sem->waiting) == 0)
			sched_yield();
		/* Let it get into FUTEX_WAIT (a later wake would also be correct). */
		struct timespec pause = { .tv_nsec = 10 * 1000000 };
		nanosleep(&pause, NULL);
	}
	if (d->read_instead)
		shm_ring_read(d->ring, buf, sizeof(buf), 0);
	else
		shm_ring_write(d->ring, buf, 8);
	return NULL;
}

static void test_write_wakes_a_reader_sleeping_on_the_futex(void **state)
{
	struct fixture *f = *state;
	struct delayed_write d = { f, &f->ctx, &ring0(f)->readable, 0 };
	pthread_t thread;

	assert_int_equal(pthread_create(&thread, NULL, write_when_asleep, &d), 0);
	int r = shm_ring_wait_readable(&f->arx, 0, 5000);
	pthread_join(thread, NULL);
	assert_int_equal(r, 0);
	assert_int_equal(shm_ring_readable(&f->arx), 8);
	assert_true(f->arx.stats.futex_waits >= 1);
	assert_int_equal(f->ctx.stats.futex_wakes, 1);
}

static void test_read_wakes_a_writer_sleeping_for_space(void **state)
{
	struct fixture *f = *state;
	char full[RING_SIZE] = { 0 };
	struct delayed_write d = { f, &f->arx, &ring0(f)->writable, 1 };
	pthread_t thread;

	assert_int_equal(shm_ring_write(&f->ctx, full, sizeof(full)), RING_SIZE);
	assert_int_equal(pthread_create(&thread, NULL, write_when_asleep, &d), 0);
	int r = shm_ring_wait_writable(&f->ctx, 0, 5000);
	pthread_join(thread, NULL);
	assert_int_equal(r, 0);
	assert_int_equal(shm_ring_writable(&f->ctx), 64);
	assert_int_equal(f->arx.stats.futex_wakes, 1);
}

static void test_spinning_reader_sees_data_without_sleeping(void **state)
{
	struct fixture *f = *state;
	struct delayed_write d = { f, &f->ctx, NULL, 0 };
	pthread_t thread;

	assert_int_equal(pthread_create(&thread, NULL, write_when_asleep, &d), 0);
	/* A spin long enough for the thread to start and write. */
	int r = shm_ring_wait_readable(&f->arx, 2 * 1000 * 1000, 5000);
	pthread_join(thread, NULL);
	assert_int_equal(r, 0);
	assert_int_equal(shm_ring_readable(&f->arx), 8);
	assert_int_equal(f->ctx.stats.futex_wakes, 0);
}

static void test_notify_without_a_sleeper_makes_no_system_call(void **state)
{
	struct fixture *f = *state;
	char buf[64] = { 0 };
	long before = futex_syscalls;

	for (int i = 0; i < 10000; i++) {
		assert_int_equal(shm_ring_write(&f->ctx, buf, sizeof(buf)), sizeof(buf));
		assert_int_equal(shm_ring_read(&f->arx, buf, sizeof(buf), 0), sizeof(buf));
		assert_int_equal(shm_ring_notify(&f->ctx), 0);
	}
	assert_int_equal(futex_syscalls, before);
	assert_int_equal(f->ctx.stats.futex_wakes + f->arx.stats.futex_wakes, 0);
}

static void test_notify_with_an_announced_sleeper_makes_one_wake_call(void **state)
{
	struct fixture *f = *state;
	long before = futex_syscalls;

	/* The acceptor announces that it sleeps (as shm_ring_wait_readable does). */
	(void)futex_sem_prepare(&ring0(f)->readable);
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), 1);
	assert_int_equal(futex_syscalls, before + 1);
	assert_int_equal(f->ctx.stats.futex_wakes, 1);
	futex_sem_cancel(&ring0(f)->readable);
	assert_int_equal(shm_ring_write(&f->ctx, "y", 1), 1);
	assert_int_equal(futex_syscalls, before + 1);
}

static void test_write_writes_the_eventfd_of_a_peer_sleeping_in_epoll(void **state)
{
	struct fixture *f = *state;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint64_t value = 0;

	assert_true(efd >= 0);
	f->ctx.wake_fd = efd;
	assert_int_equal(shm_ring_arm_eventfd(&f->arx), 0);
	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), 1);
	assert_int_equal(read(efd, &value, sizeof(value)), sizeof(value));
	assert_int_equal(value, 1);
	assert_int_equal(f->ctx.stats.eventfd_writes, 1);
	assert_int_equal(f->ctx.stats.futex_wakes, 0);

	shm_ring_disarm_eventfd(&f->arx);
	assert_int_equal(shm_ring_write(&f->ctx, "y", 1), 1);
	assert_int_equal(read(efd, &value, sizeof(value)), -1);
	assert_int_equal(f->ctx.stats.eventfd_writes, 1);
	close(efd);
}

static void test_arm_eventfd_reports_a_ring_that_is_ready(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shm_ring_write(&f->ctx, "x", 1), 1);
	assert_int_equal(shm_ring_arm_eventfd(&f->arx), 1);
	shm_ring_disarm_eventfd(&f->arx);
	/* A producer with space is ready too. */
	assert_int_equal(shm_ring_arm_eventfd(&f->ctx), 1);
	shm_ring_disarm_eventfd(&f->ctx);
}

struct sleeper {
	struct shm_ring *ring;
	int result;
	int64_t waited_ns;
};

static void *sleep_until_readable(void *arg)
{
	struct sleeper *s = arg;
	int64_t start = now_ns();
	s->result = shm_ring_wait_readable(s->ring, 0, 5000);
	s->waited_ns = now_ns() - start;
	return NULL;
}

static void test_corruption_wakes_a_thread_sleeping_on_the_other_direction(void **state)
{
	struct fixture *f = *state;
	struct sleeper s = { .ring = &f->crx };
	pthread_t thread;
	char buf[8];

	/* The connector's reader sleeps on ring 1 ... */
	assert_int_equal(pthread_create(&thread, NULL, sleep_until_readable, &s), 0);
	while (atomic_load(&f->control->rings[1].readable.waiting) == 0)
		sched_yield();
	struct timespec pause = { .tv_nsec = 10 * 1000000 };
	nanosleep(&pause, NULL);
	/* ... while another of its threads finds ring 0 corrupt. */
	atomic_store(&ring0(f)->tail, UINT64_MAX);
	assert_int_equal(shm_ring_writable(&f->ctx), -ECONNRESET);
	pthread_join(thread, NULL);
	assert_int_equal(s.result, 0);
	assert_true(s.waited_ns < 4LL * 1000000000);
	assert_int_equal(shm_ring_read(&f->crx, buf, sizeof(buf), 0), -ECONNRESET);
}

/* ---- two processes ---- */

#define STREAM_BYTES ((uint64_t)64 << 20)
#define STREAM_RING ((size_t)64 << 10)
#define PATTERN_PERIOD ((size_t)1000003) /* prime: misaligned with every ring size */
#define STREAM_CHUNK ((size_t)96 << 10)

/* The producer process: streams the pattern in random-sized writes, sleeping when full. */
static int stream_produce(struct shm_ring *tx, const unsigned char *pattern, uint64_t seed)
{
	uint64_t sent = 0;

	alarm(60);
	while (sent < STREAM_BYTES) {
		size_t len = 1 + (size_t)(rng_next(&seed) % STREAM_CHUNK);
		if (len > STREAM_BYTES - sent)
			len = (size_t)(STREAM_BYTES - sent);
		ssize_t n = shm_ring_write(tx, pattern + sent % PATTERN_PERIOD, len);
		if (n > 0) {
			sent += (uint64_t)n;
		} else if (n == -EAGAIN) {
			if (shm_ring_wait_writable(tx, 0, 5000) < 0)
				return 2;
		} else {
			return 3;
		}
	}
	shm_ring_close(tx);
	return 0;
}

static void test_64_mib_stream_between_two_processes_through_a_64_kib_ring(void **state)
{
	uint64_t seed = 0x5eed;
	size_t size = (size_t)shm_segment_size(STREAM_RING);
	int fd = memfd_create("viaudit-test-ring", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_ptr_not_equal(base, MAP_FAILED);
	close(fd);
	assert_int_equal(shm_segment_init(base, size, STREAM_RING), 0);

	/* The pattern twice over, so any chunk up to a period long is contiguous. */
	unsigned char *pattern = malloc(2 * PATTERN_PERIOD);
	unsigned char *buf = malloc(STREAM_CHUNK);
	assert_non_null(pattern);
	assert_non_null(buf);
	fill_pattern(pattern, PATTERN_PERIOD, seed);
	memcpy(pattern + PATTERN_PERIOD, pattern, PATTERN_PERIOD);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct shm_ring tx, rx;
		if (shm_segment_attach(base, size, SHM_SEGMENT_CONNECTOR, &tx, &rx) != 0)
			_exit(1);
		_exit(stream_produce(&tx, pattern, seed + 1));
	}

	struct shm_ring tx, rx;
	assert_int_equal(shm_segment_attach(base, size, SHM_SEGMENT_ACCEPTOR, &tx, &rx), 0);
	uint64_t got = 0, mismatch_at = UINT64_MAX;
	int error = 0;
	for (;;) {
		size_t len = 1 + (size_t)(rng_next(&seed) % STREAM_CHUNK);
		ssize_t n = shm_ring_read(&rx, buf, len, 0);
		if (n == 0)
			break;
		if (n == -EAGAIN) {
			int w = shm_ring_wait_readable(&rx, 0, 5000);
			if (w < 0) {
				error = w;
				break;
			}
			continue;
		}
		if (n < 0) {
			error = (int)n;
			break;
		}
		if (memcmp(buf, pattern + got % PATTERN_PERIOD, (size_t)n) != 0) {
			mismatch_at = got;
			break;
		}
		got += (uint64_t)n;
	}
	if (error != 0 || mismatch_at != UINT64_MAX)
		kill(child, SIGKILL);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("64 MiB in %.2f s (%.0f MB/s), consumer futex waits %llu, wakes %llu\n", secs,
		      (double)STREAM_BYTES / secs / 1e6, (unsigned long long)rx.stats.futex_waits,
		      (unsigned long long)rx.stats.futex_wakes);
	free(pattern);
	free(buf);
	munmap(base, size);
	assert_int_equal(error, 0);
	assert_true(mismatch_at == UINT64_MAX);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(got == STREAM_BYTES);
	/* spin 0: the consumer really slept and was really woken. */
	assert_true(rx.stats.futex_waits > 0);
	assert_true(secs < 20);
}

static void test_spin_default_is_zero_only_on_one_cpu(void **state)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	assert_int_equal(shm_spin_default_us(), cpus > 1 ? SHM_SPIN_DEFAULT_US : 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_write_then_read_returns_the_same_bytes),
		T(test_write_and_read_wrap_around_the_end_of_the_buffer),
		T(test_write_to_a_nearly_full_ring_returns_what_fit),
		T(test_write_to_a_full_ring_returns_eagain),
		T(test_write_after_a_read_uses_the_freed_space),
		T(test_read_of_an_empty_ring_returns_eagain),
		T(test_read_returns_what_is_there_when_asked_for_more),
		T(test_read_of_less_than_is_there_leaves_the_rest),
		T(test_peek_does_not_consume),
		T(test_read_refuses_unknown_flags),
		T(test_writev_across_the_wrap_keeps_the_order),
		T(test_readv_across_the_wrap_fills_each_buffer_in_turn),
		T(test_writev_of_more_than_fits_returns_what_fit),
		T(test_writev_refuses_a_bad_iovec_count),
		T(test_writev_refuses_lengths_that_overflow),
		T(test_zero_length_write_and_read_return_zero),
		T(test_read_returns_eof_once_the_writer_closed_and_the_ring_is_drained),
		T(test_write_after_own_close_returns_epipe),
		T(test_write_after_the_reader_closed_returns_epipe),
		T(test_read_after_own_close_returns_eof),
		T(test_closing_one_direction_leaves_the_other_open),
		T(test_readable_and_writable_count_the_bytes_in_flight),
		T(test_calls_on_the_wrong_side_return_einval),
		T(test_counters_work_across_the_64_bit_wrap),
		T(test_ring_rejects_head_past_capacity),
		T(test_ring_accepts_head_exactly_at_capacity),
		T(test_ring_rejects_head_moved_backward),
		T(test_ring_rejects_tail_moved_backward),
		T(test_ring_rejects_tail_past_head),
		T(test_ring_rejects_huge_counters),
		T(test_ring_rejects_a_huge_tail),
		T(test_peer_reset_fails_both_directions),
		T(test_a_peer_writing_the_reset_word_fails_the_connection),
		T(test_garbage_in_the_closed_flag_is_only_a_close),
		T(test_garbage_in_the_waiting_word_only_costs_a_wakeup),
		cmocka_unit_test(test_head_changing_between_reads_never_escapes_the_buffer),
		cmocka_unit_test(test_tail_changing_between_writes_never_escapes_the_buffer),
		T(test_wait_readable_times_out_on_an_empty_ring),
		T(test_wait_with_zero_timeout_only_checks),
		T(test_wait_returns_at_once_after_the_peer_closed),
		T(test_write_wakes_a_reader_sleeping_on_the_futex),
		T(test_read_wakes_a_writer_sleeping_for_space),
		T(test_spinning_reader_sees_data_without_sleeping),
		T(test_notify_without_a_sleeper_makes_no_system_call),
		T(test_notify_with_an_announced_sleeper_makes_one_wake_call),
		T(test_write_writes_the_eventfd_of_a_peer_sleeping_in_epoll),
		T(test_arm_eventfd_reports_a_ring_that_is_ready),
		T(test_corruption_wakes_a_thread_sleeping_on_the_other_direction),
		cmocka_unit_test(test_64_mib_stream_between_two_processes_through_a_64_kib_ring),
		cmocka_unit_test(test_spin_default_is_zero_only_on_one_cpu),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
