/* Unit tests of reading a loaded object's dynamic section (the base-libc lookup). */
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "elf_dynamic.h"

static struct elf_dynamic libc_dyn;
static void *libc_handle;

/* libc's own definition (not a sanitizer's interceptor, which RTLD_DEFAULT would find). */
static void *libc_dlsym(const char *name)
{
	return dlsym(libc_handle, name);
}

static int read_libc(void **state)
{
	libc_handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	assert_non_null(libc_handle);
	struct link_map *map = NULL;
	assert_int_equal(dlinfo(libc_handle, RTLD_DI_LINKMAP, &map), 0);
	assert_int_equal(elf_dynamic_read(map, NULL, 0, &libc_dyn), 0);
	return 0;
}

static void *libc_address(const char *name)
{
	const ElfW(Sym) *sym = elf_dynamic_lookup(&libc_dyn, name);
	return sym ? (void *)(libc_dyn.base + sym->st_value) : NULL;
}

static void test_lookup_finds_what_the_dynamic_linker_binds(void **state)
{
	assert_ptr_equal(libc_address("connect"), libc_dlsym("connect"));
	assert_ptr_equal(libc_address("__errno_location"), libc_dlsym("__errno_location"));
	assert_ptr_equal(libc_address("epoll_pwait"), libc_dlsym("epoll_pwait"));
}

static void test_lookup_picks_the_default_version(void **state)
{
	/* libc.so.6 has dlopen@GLIBC_2.2.5 (compat) and dlopen@@GLIBC_2.34 (default). */
	assert_ptr_equal(libc_address("dlopen"), libc_dlsym("dlopen"));
}

static void test_lookup_of_unknown_symbol_is_null(void **state)
{
	assert_null(elf_dynamic_lookup(&libc_dyn, "viaudit_no_such_symbol"));
	assert_null(elf_dynamic_lookup(&libc_dyn, ""));
}

static void test_soname_is_read(void **state)
{
	assert_non_null(libc_dyn.soname);
	assert_string_equal(libc_dyn.soname, "libc.so.6");
}

static void test_address_range_holds_the_code(void **state)
{
	uintptr_t a = (uintptr_t)libc_dlsym("connect");
	assert_true(libc_dyn.start < libc_dyn.end);
	assert_true(a >= libc_dyn.start && a < libc_dyn.end);
	assert_true(libc_dyn.relro_start <= libc_dyn.relro_end);
}

static void test_relocations_are_found(void **state)
{
	assert_non_null(libc_dyn.rela);
	assert_true(libc_dyn.relasz > 0);
	assert_int_equal(libc_dyn.relasz % sizeof(ElfW(Rela)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_finds_what_the_dynamic_linker_binds),
		cmocka_unit_test(test_lookup_picks_the_default_version),
		cmocka_unit_test(test_lookup_of_unknown_symbol_is_null),
		cmocka_unit_test(test_soname_is_read),
		cmocka_unit_test(test_address_range_holds_the_code),
		cmocka_unit_test(test_relocations_are_found),
	};
	return cmocka_run_group_tests(tests, read_libc, NULL);
}
