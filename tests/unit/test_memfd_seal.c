/* Unit tests of the sealed memfd: its seals hold, and a memfd without them is refused. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "memfd_seal.h"

#define SIZE (64u * 1024)

static void test_created_memfd_passes_check(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), 0);
	close(fd);
}

static void test_created_memfd_has_grow_shrink_and_seal_seals(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GET_SEALS), F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	close(fd);
}

static void test_created_memfd_is_close_on_exec(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

static void test_sealed_memfd_cannot_be_shrunk(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE / 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(memfd_seal_check(fd, SIZE), 0);
	close(fd);
}

static void test_sealed_memfd_cannot_be_grown(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);
	char c = 1;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE * 2), -1);
	assert_int_equal(errno, EPERM);
	/* Writing past the end would grow it too. */
	assert_int_equal(pwrite(fd, &c, 1, SIZE), -1);
	assert_int_equal(errno, EPERM);
	close(fd);
}

static void test_sealed_memfd_refuses_more_seals(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	/* F_SEAL_SEAL: a peer cannot add F_SEAL_WRITE and make the other's stores fault. */
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);
	close(fd);
}

static void test_memfd_without_seals_is_refused(void **state)
{
	int fd = memfd_create("viaudit-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_memfd_sealed_against_grow_only_is_refused(void **state)
{
	int fd = memfd_create("viaudit-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SEAL), 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_memfd_without_seal_seal_is_refused(void **state)
{
	int fd = memfd_create("viaudit-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_memfd_without_sealing_allowed_is_refused(void **state)
{
	int fd = memfd_create("viaudit-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_memfd_with_write_seal_is_refused(void **state)
{
	int fd = memfd_create("viaudit-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS,
			       F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL),
			 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_memfd_of_other_size_is_refused(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE);

	assert_true(fd >= 0);
	assert_int_equal(memfd_seal_check(fd, SIZE * 2), -EPROTO);
	assert_int_equal(memfd_seal_check(fd, SIZE - 1), -EPROTO);
	close(fd);
}

static void test_pipe_is_refused(void **state)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(memfd_seal_check(p[0], SIZE), -EPROTO);
	close(p[0]);
	close(p[1]);
}

static void test_regular_file_is_refused(void **state)
{
	char path[] = "/tmp/viaudit-memfd-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	assert_int_equal(memfd_seal_check(fd, SIZE), -EPROTO);
	close(fd);
}

static void test_zero_size_is_refused(void **state)
{
	assert_int_equal(memfd_seal_create("viaudit-test", 0), -EINVAL);
}

static void test_two_mappings_share_bytes(void **state)
{
	int fd = memfd_seal_create("viaudit-test", SIZE), error = 0;
	unsigned char *a, *b;

	assert_true(fd >= 0);
	a = memfd_seal_map(fd, SIZE, &error);
	b = memfd_seal_map(fd, SIZE, &error);
	assert_true(a != MAP_FAILED && b != MAP_FAILED);
	assert_int_equal(error, 0);
	a[SIZE - 1] = 0x7e;
	assert_int_equal(b[SIZE - 1], 0x7e);
	assert_int_equal(memfd_seal_unmap(a, SIZE), 0);
	assert_int_equal(memfd_seal_unmap(b, SIZE), 0);
	close(fd);
}

static void test_map_of_bad_fd_returns_errno(void **state)
{
	int error = 0;

	assert_ptr_equal(memfd_seal_map(-1, SIZE, &error), MAP_FAILED);
	assert_int_equal(error, -EBADF);
	assert_ptr_equal(memfd_seal_map(-1, SIZE, NULL), MAP_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_created_memfd_passes_check),
		cmocka_unit_test(test_created_memfd_has_grow_shrink_and_seal_seals),
		cmocka_unit_test(test_created_memfd_is_close_on_exec),
		cmocka_unit_test(test_sealed_memfd_cannot_be_shrunk),
		cmocka_unit_test(test_sealed_memfd_cannot_be_grown),
		cmocka_unit_test(test_sealed_memfd_refuses_more_seals),
		cmocka_unit_test(test_memfd_without_seals_is_refused),
		cmocka_unit_test(test_memfd_sealed_against_grow_only_is_refused),
		cmocka_unit_test(test_memfd_without_seal_seal_is_refused),
		cmocka_unit_test(test_memfd_without_sealing_allowed_is_refused),
		cmocka_unit_test(test_memfd_with_write_seal_is_refused),
		cmocka_unit_test(test_memfd_of_other_size_is_refused),
		cmocka_unit_test(test_pipe_is_refused),
		cmocka_unit_test(test_regular_file_is_refused),
		cmocka_unit_test(test_zero_size_is_refused),
		cmocka_unit_test(test_two_mappings_share_bytes),
		cmocka_unit_test(test_map_of_bad_fd_returns_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
