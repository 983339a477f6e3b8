/* Unit tests of the virtual socket table: lookup, dup sharing, and release. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vsock.h"

static const struct vi_route_choice no_route = { .route = NULL, .caller = "test" };

static int setup(void **state)
{
	if (vsock_table.slots == NULL)
		assert_int_equal(vsock_table_init(), 0);
	return 0;
}

static void test_plain_fd_has_no_vsock(void **state)
{
	assert_null(vsock_get(5));
	assert_null(vsock_get(-1));
	assert_null(vsock_get(1 << 30));
}

static void test_installed_vsock_is_found_by_fd(void **state)
{
	struct vsock *vs = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_non_null(vs);
	assert_int_equal(vsock_install(7, vs), 0);
	assert_ptr_equal(vsock_get(7), vs);
	vsock_forget(7);
	assert_null(vsock_get(7));
}

static void test_dup_shares_the_vsock_until_last_close(void **state)
{
	struct vsock *vs = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_int_equal(vsock_install(8, vs), 0);
	assert_int_equal(vsock_install(9, vsock_ref(vs)), 0);
	assert_int_equal(atomic_load(&vs->refs), 2);
	vsock_forget(8);
	assert_null(vsock_get(8));
	assert_ptr_equal(vsock_get(9), vs);
	assert_int_equal(atomic_load(&vs->refs), 1);
	vsock_forget(9);
	assert_null(vsock_get(9));
}

static void test_install_over_a_vsock_replaces_it(void **state)
{
	struct vsock *a = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	struct vsock *b = vsock_new(VSOCK_LISTENER, &no_route, VI_PROTO_TCP6);
	assert_int_equal(vsock_install(10, a), 0);
	assert_int_equal(vsock_install(10, b), 0);
	assert_ptr_equal(vsock_get(10), b);
	assert_int_equal(vsock_get(10)->kind, VSOCK_LISTENER);
	vsock_forget(10);
}

static void test_install_past_the_table_fails_with_emfile(void **state)
{
	struct vsock *vs = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_int_equal(vsock_install((int)vsock_table.size, vs), -EMFILE);
	assert_int_equal(vsock_install(-3, vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4)),
			 -EMFILE);
}

static void test_released_vsocks_are_reused(void **state)
{
	struct vsock *a = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_int_equal(vsock_install(11, a), 0);
	vsock_forget(11);
	struct vsock *b = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_ptr_equal(a, b);
	assert_int_equal(atomic_load(&b->refs), 1);
	assert_int_equal(vsock_install(11, b), 0);
	vsock_forget(11);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_plain_fd_has_no_vsock, setup),
		cmocka_unit_test_setup(test_installed_vsock_is_found_by_fd, setup),
		cmocka_unit_test_setup(test_dup_shares_the_vsock_until_last_close, setup),
		cmocka_unit_test_setup(test_install_over_a_vsock_replaces_it, setup),
		cmocka_unit_test_setup(test_install_past_the_table_fails_with_emfile, setup),
		cmocka_unit_test_setup(test_released_vsocks_are_reused, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
