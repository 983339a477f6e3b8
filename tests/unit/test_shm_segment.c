/* Unit tests of the shared-memory segment: its size, its layout, and the refusal of inconsistent segments. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shm_segment.h"

#define RING_SIZE ((size_t)16 << 10)

struct fixture {
	void *base;
	size_t size;
	struct shm_segment_control *control;
	struct shm_ring tx, rx;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	f->size = (size_t)shm_segment_size(RING_SIZE);
	f->base = aligned_alloc(4096, f->size);
	if (f->base == NULL)
		return -1;
	memset(f->base, 0xa5, f->size);
	if (shm_segment_init(f->base, f->size, RING_SIZE) != 0)
		return -1;
	f->control = f->base;
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

static void test_default_segment_is_two_mib_of_rings_and_one_control_page(void **state)
{
	assert_int_equal(shm_segment_size(SHM_RING_SIZE_DEFAULT), 2 * 1024 * 1024 + 4096);
	assert_int_equal(shm_segment_size(4096), 3 * 4096);
}

static void test_size_refuses_a_ring_size_that_is_not_a_power_of_two(void **state)
{
	assert_int_equal(shm_segment_size(3 << 12), -EINVAL);
	assert_int_equal(shm_segment_size(0), -EINVAL);
}

static void test_size_refuses_ring_sizes_out_of_bounds(void **state)
{
	assert_int_equal(shm_segment_size(2048), -EINVAL);
	assert_int_equal(shm_segment_size((size_t)2 << 30), -EINVAL);
	assert_int_equal(shm_segment_size((size_t)1 << 30), ((ssize_t)2 << 30) + 4096);
}

static void test_control_segment_fits_in_a_page(void **state)
{
	assert_true(sizeof(struct shm_segment_control) <= SHM_SEGMENT_CONTROL_SIZE);
}

static void test_head_and_tail_sit_in_different_cache_lines(void **state)
{
	size_t head = offsetof(struct shm_ring_shared, head);
	size_t tail = offsetof(struct shm_ring_shared, tail);
	size_t readable = offsetof(struct shm_ring_shared, readable);
	size_t writable = offsetof(struct shm_ring_shared, writable);

	assert_int_equal(head % SHM_CACHE_LINE, 0);
	assert_int_equal(tail % SHM_CACHE_LINE, 0);
	assert_int_not_equal(head / SHM_CACHE_LINE, tail / SHM_CACHE_LINE);
	assert_int_not_equal(readable / SHM_CACHE_LINE, head / SHM_CACHE_LINE);
	assert_int_not_equal(writable / SHM_CACHE_LINE, tail / SHM_CACHE_LINE);
	/* Not even in the same 128-byte pair the adjacent-line prefetcher moves together. */
	assert_int_not_equal(head / 128, tail / 128);
	assert_int_equal(offsetof(struct shm_segment_control, rings) % SHM_CACHE_LINE, 0);
}

static void test_init_refuses_a_size_that_does_not_match_the_ring_size(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_segment_init(f->base, f->size - 4096, RING_SIZE), -EINVAL);
	assert_int_equal(shm_segment_init(f->base, f->size, RING_SIZE / 2), -EINVAL);
}

static void test_init_refuses_a_misaligned_base(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_segment_init((char *)f->base + 8, f->size, RING_SIZE), -EINVAL);
}

static void test_init_zeroes_the_control_segment_only(void **state)
{
	struct fixture *f = *state;
	const unsigned char *p = f->base;

	assert_int_equal(f->control->reset, 0);
	assert_int_equal(f->control->rings[1].head, 0);
	assert_int_equal(p[SHM_SEGMENT_CONTROL_SIZE - 1], 0);
	/* The data pages were not touched. */
	assert_int_equal(p[SHM_SEGMENT_CONTROL_SIZE], 0xa5);
	assert_int_equal(p[f->size - 1], 0xa5);
}

static void test_attach_gives_each_ring_its_own_area_inside_the_mapping(void **state)
{
	struct fixture *f = *state;
	unsigned char *lo = f->base, *hi = lo + f->size;

	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_CONNECTOR, &f->tx, &f->rx), 0);
	assert_int_equal(f->tx.capacity, RING_SIZE);
	assert_int_equal(f->rx.capacity, RING_SIZE);
	assert_ptr_equal(f->tx.data, lo + SHM_SEGMENT_CONTROL_SIZE);
	assert_ptr_equal(f->rx.data, lo + SHM_SEGMENT_CONTROL_SIZE + RING_SIZE);
	assert_ptr_equal(f->rx.data + RING_SIZE, hi);
	assert_int_equal(f->tx.role, SHM_RING_PRODUCER);
	assert_int_equal(f->rx.role, SHM_RING_CONSUMER);
	assert_int_equal(f->tx.wake_fd, -1);
}

static void test_connector_writes_what_the_acceptor_reads(void **state)
{
	struct fixture *f = *state;
	struct shm_ring atx, arx;
	char buf[8];

	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_CONNECTOR, &f->tx, &f->rx), 0);
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &atx, &arx), 0);
	assert_int_equal(shm_ring_write(&f->tx, "ping", 4), 4);
	assert_int_equal(shm_ring_read(&arx, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(shm_ring_write(&atx, "pong", 4), 4);
	assert_int_equal(shm_ring_read(&f->rx, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "pong", 4);
}

static void test_attach_refuses_a_wrong_magic(void **state)
{
	struct fixture *f = *state;
	f->control->header.magic ^= 1;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_refuses_a_wrong_version(void **state)
{
	struct fixture *f = *state;
	f->control->header.version = SHM_SEGMENT_VERSION + 1;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_refuses_a_wrong_control_size(void **state)
{
	struct fixture *f = *state;
	f->control->header.control_size = 2048;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_refuses_a_ring_size_that_is_not_a_power_of_two(void **state)
{
	struct fixture *f = *state;
	/* Consistent with the mapping (4096 + 2 * 6144 = 16 KiB) but not a power of two. */
	f->control->header.ring_size = 6144;
	f->control->header.segment_size = 4096 + 2 * 6144;
	assert_int_equal(shm_segment_attach(f->base, 4096 + 2 * 6144, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx),
			 -EPROTO);
}

static void test_attach_refuses_a_ring_size_larger_than_the_mapping(void **state)
{
	struct fixture *f = *state;
	f->control->header.ring_size = 2 * RING_SIZE;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
	/* Even when the header's own total agrees with its ring size. */
	f->control->header.segment_size = 4096 + 4 * RING_SIZE;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_refuses_a_mapping_of_another_size(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_segment_attach(f->base, f->size - 4096, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx),
			 -EPROTO);
	assert_int_equal(shm_segment_attach(f->base, f->size + 4096, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx),
			 -EPROTO);
}

static void test_attach_refuses_a_huge_ring_size(void **state)
{
	struct fixture *f = *state;
	/* 2 * ring_size would wrap a 64-bit total back to the mapping size. */
	f->control->header.ring_size = UINT64_C(1) << 63;
	f->control->header.segment_size = 4096;
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_refuses_a_mapping_smaller_than_the_control_segment(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_segment_attach(f->base, 100, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EINVAL);
}

static void test_attach_refuses_a_misaligned_base(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(shm_segment_attach((char *)f->base + 4, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx),
			 -EINVAL);
}

static void test_attach_refuses_counters_further_apart_than_the_ring(void **state)
{
	struct fixture *f = *state;
	atomic_store(&f->control->rings[0].head, RING_SIZE + 1);
	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), -EPROTO);
}

static void test_attach_reads_the_header_once(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shm_segment_attach(f->base, f->size, SHM_SEGMENT_ACCEPTOR, &f->tx, &f->rx), 0);
	/* A peer rewriting the header afterwards changes nothing for this side. */
	f->control->header.ring_size = (uint64_t)1 << 30;
	f->control->header.magic = 0;
	assert_int_equal(f->rx.capacity, RING_SIZE);
	assert_int_equal(shm_ring_writable(&f->tx), RING_SIZE);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_default_segment_is_two_mib_of_rings_and_one_control_page),
		T(test_size_refuses_a_ring_size_that_is_not_a_power_of_two),
		T(test_size_refuses_ring_sizes_out_of_bounds),
		T(test_control_segment_fits_in_a_page),
		T(test_head_and_tail_sit_in_different_cache_lines),
		T(test_init_refuses_a_size_that_does_not_match_the_ring_size),
		T(test_init_refuses_a_misaligned_base),
		T(test_init_zeroes_the_control_segment_only),
		T(test_attach_gives_each_ring_its_own_area_inside_the_mapping),
		T(test_connector_writes_what_the_acceptor_reads),
		T(test_attach_refuses_a_wrong_magic),
		T(test_attach_refuses_a_wrong_version),
		T(test_attach_refuses_a_wrong_control_size),
		T(test_attach_refuses_a_ring_size_that_is_not_a_power_of_two),
		T(test_attach_refuses_a_ring_size_larger_than_the_mapping),
		T(test_attach_refuses_a_mapping_of_another_size),
		T(test_attach_refuses_a_huge_ring_size),
		T(test_attach_refuses_a_mapping_smaller_than_the_control_segment),
		T(test_attach_refuses_a_misaligned_base),
		T(test_attach_refuses_counters_further_apart_than_the_ring),
		T(test_attach_reads_the_header_once),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
