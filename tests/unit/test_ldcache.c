/* Unit tests of the ld.so.cache reader: the real cache, made-up caches, and damaged copies. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ldcache.h"

#define SYSTEM_CACHE "/etc/ld.so.cache"
#define HWCAP_X86_64_V3 ((1ull << 62) | 1) /* a glibc-hwcaps entry (DL_CACHE_HWCAP_EXTENSION) */

/* ----- helpers ----- */

struct fake_entry {
	uint32_t flags;
	const char *name;
	const char *path;
	uint64_t hwcap;
};

/* A cache of the new format, as ldconfig writes it; the caller frees it. */
struct fake_cache {
	unsigned char *data;
	size_t size;
};

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static struct fake_cache fake_cache_make(const struct fake_entry *entries, size_t n)
{
	size_t strings = 0;
	for (size_t i = 0; i < n; i++)
		strings += strlen(entries[i].name) + 1 + strlen(entries[i].path) + 1;
	size_t size = 48 + 24 * n + strings;
	unsigned char *data = calloc(1, size);
	assert_non_null(data);
	memcpy(data, "glibc-ld.so.cache1.1", 20);
	put_u32(data + 20, (uint32_t)n);
	put_u32(data + 24, (uint32_t)strings);
	data[28] = 2; /* little endian */
	size_t at = 48 + 24 * n;
	for (size_t i = 0; i < n; i++) {
		unsigned char *e = data + 48 + 24 * i;
		put_u32(e, entries[i].flags);
		put_u32(e + 4, (uint32_t)at);
		strcpy((char *)data + at, entries[i].name);
		at += strlen(entries[i].name) + 1;
		put_u32(e + 8, (uint32_t)at);
		strcpy((char *)data + at, entries[i].path);
		at += strlen(entries[i].path) + 1;
		put_u64(e + 16, entries[i].hwcap);
	}
	return (struct fake_cache){ data, size };
}

static const struct fake_entry two_libraries[] = {
	{ LDCACHE_FLAGS_X86_64, "libfoo.so.1", "/usr/lib/x86_64-linux-gnu/libfoo.so.1", 0 },
	{ LDCACHE_FLAGS_X86_64, "libbar.so.2", "/usr/lib/x86_64-linux-gnu/libbar.so.2", 0 },
};

/* Writes `size` bytes to a new temporary file and returns its path (static storage). */
static const char *write_temp_file(const void *data, size_t size)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/viaudit-ldcache.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	return path;
}

/* Reads the system cache into memory, or skips the test when there is none. */
static struct fake_cache read_system_cache(void)
{
	FILE *f = fopen(SYSTEM_CACHE, "rb");
	if (f == NULL) {
		print_message("no %s on this machine\n", SYSTEM_CACHE);
		skip();
	}
	struct fake_cache c = { NULL, 0 };
	unsigned char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		c.data = realloc(c.data, c.size + n);
		assert_non_null(c.data);
		memcpy(c.data + c.size, buf, n);
		c.size += n;
	}
	fclose(f);
	return c;
}

/* ----- the real cache ----- */

static void test_ldcache_finds_libc_in_system_cache(void **state)
{
	(void)state;
	if (access(SYSTEM_CACHE, R_OK) != 0)
		skip();
	struct ldcache cache;
	assert_int_equal(ldcache_open(&cache, SYSTEM_CACHE), 0);
	const char *path = ldcache_lookup(&cache, "libc.so.6", LDCACHE_FLAGS_X86_64);
	assert_non_null(path);
	assert_true(path[0] == '/');
	assert_string_equal(strrchr(path, '/'), "/libc.so.6");
	assert_int_equal(access(path, R_OK), 0);
	ldcache_close(&cache);
}

static void test_ldcache_system_cache_has_no_such_library(void **state)
{
	(void)state;
	if (access(SYSTEM_CACHE, R_OK) != 0)
		skip();
	struct ldcache cache;
	assert_int_equal(ldcache_open(&cache, SYSTEM_CACHE), 0);
	assert_null(ldcache_lookup(&cache, "libviaudit-no-such-library.so.9", LDCACHE_FLAGS_X86_64));
	ldcache_close(&cache);
}

/* ----- made-up caches ----- */

static void test_ldcache_finds_each_entry_by_name(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), 0);
	assert_string_equal(ldcache_lookup(&cache, "libfoo.so.1", LDCACHE_FLAGS_X86_64),
			    "/usr/lib/x86_64-linux-gnu/libfoo.so.1");
	assert_string_equal(ldcache_lookup(&cache, "libbar.so.2", LDCACHE_FLAGS_X86_64),
			    "/usr/lib/x86_64-linux-gnu/libbar.so.2");
	ldcache_close(&cache);
	free(c.data);
}

static void test_ldcache_ignores_entries_of_another_architecture(void **state)
{
	(void)state;
	const struct fake_entry entries[] = {
		{ 0x0003, "libfoo.so.1", "/usr/lib32/libfoo.so.1", 0 }, /* i386 libc6 */
	};
	struct fake_cache c = fake_cache_make(entries, 1);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), 0);
	assert_null(ldcache_lookup(&cache, "libfoo.so.1", LDCACHE_FLAGS_X86_64));
	ldcache_close(&cache);
	free(c.data);
}

static void test_ldcache_prefers_baseline_entry_over_hwcaps_entry(void **state)
{
	(void)state;
	const struct fake_entry entries[] = {
		{ LDCACHE_FLAGS_X86_64, "libfoo.so.1", "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1",
		  HWCAP_X86_64_V3 },
		{ LDCACHE_FLAGS_X86_64, "libfoo.so.1", "/usr/lib/libfoo.so.1", 0 },
	};
	struct fake_cache c = fake_cache_make(entries, 2);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), 0);
	assert_string_equal(ldcache_lookup(&cache, "libfoo.so.1", LDCACHE_FLAGS_X86_64),
			    "/usr/lib/libfoo.so.1");
	ldcache_close(&cache);
	free(c.data);
}

static void test_ldcache_uses_hwcaps_entry_when_it_is_the_only_one(void **state)
{
	(void)state;
	const struct fake_entry entries[] = {
		{ LDCACHE_FLAGS_X86_64, "libfoo.so.1", "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1",
		  HWCAP_X86_64_V3 },
	};
	struct fake_cache c = fake_cache_make(entries, 1);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), 0);
	assert_string_equal(ldcache_lookup(&cache, "libfoo.so.1", LDCACHE_FLAGS_X86_64),
			    "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1");
	ldcache_close(&cache);
	free(c.data);
}

static void test_ldcache_accepts_an_empty_cache(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(NULL, 0);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), 0);
	assert_null(ldcache_lookup(&cache, "libc.so.6", LDCACHE_FLAGS_X86_64));
	ldcache_close(&cache);
	free(c.data);
}

/* ----- damaged caches ----- */

static void test_ldcache_rejects_old_format(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	memcpy(c.data, "ld.so-1.7.0", 11);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), -EINVAL);
	free(c.data);
}

static void test_ldcache_rejects_big_endian_cache(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	c.data[28] = 3;
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), -EINVAL);
	free(c.data);
}

static void test_ldcache_rejects_entry_count_past_the_end(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	put_u32(c.data + 20, UINT32_MAX);
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), -EINVAL);
	free(c.data);
}

static void test_ldcache_rejects_string_offset_past_the_end(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	put_u32(c.data + 48 + 24 + 8, (uint32_t)c.size); /* second entry's path */
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), -EINVAL);
	free(c.data);
}

static void test_ldcache_rejects_string_without_terminator(void **state)
{
	(void)state;
	struct fake_cache c = fake_cache_make(two_libraries, 2);
	c.data[c.size - 1] = 'x'; /* the last path runs off the end */
	struct ldcache cache;
	assert_int_equal(ldcache_parse(&cache, c.data, c.size), -EINVAL);
	free(c.data);
}

static void test_ldcache_rejects_truncated_copies_of_system_cache(void **state)
{
	(void)state;
	struct fake_cache c = read_system_cache();
	/* Cuts that lose part of the header or of the entry table. (A cut in the extension
	 * section after the strings leaves a cache ld.so can still use.) */
	uint32_t nentries;
	memcpy(&nentries, c.data + 20, sizeof(nentries));
	size_t entries_end = 48 + (size_t)nentries * 24;
	const size_t cuts[] = { 0, 1, 19, 20, 47, 48, 49, entries_end / 2, entries_end - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		if (cuts[i] >= c.size)
			continue;
		const char *path = write_temp_file(c.data, cuts[i]);
		struct ldcache cache;
		int err = ldcache_open(&cache, path);
		unlink(path);
		if (err != -EINVAL)
			print_message("cut at %zu bytes gave %d\n", cuts[i], err);
		assert_int_equal(err, -EINVAL);
	}
	free(c.data);
}

static void test_ldcache_survives_random_corruption_of_system_cache(void **state)
{
	(void)state;
	struct fake_cache c = read_system_cache();
	unsigned char *copy = malloc(c.size);
	assert_non_null(copy);
	srand(12345);
	for (int round = 0; round < 500; round++) {
		memcpy(copy, c.data, c.size);
		for (int k = 0; k < 8; k++) {
			/* Mostly the header and the entry table, where offsets and counts live. */
			size_t span = c.size < 4096 ? c.size : 4096;
			copy[(size_t)rand() % (k < 6 ? span : c.size)] = (unsigned char)rand();
		}
		struct ldcache cache;
		if (ldcache_parse(&cache, copy, c.size) == 0) {
			const char *path = ldcache_lookup(&cache, "libc.so.6", LDCACHE_FLAGS_X86_64);
			if (path != NULL)
				assert_true(strlen(path) < c.size);
			ldcache_close(&cache);
		}
	}
	free(copy);
	free(c.data);
}

static void test_ldcache_open_of_missing_file_returns_enoent(void **state)
{
	(void)state;
	struct ldcache cache;
	assert_int_equal(ldcache_open(&cache, "/nonexistent/ld.so.cache"), -ENOENT);
}

static void test_ldcache_open_rejects_a_directory(void **state)
{
	(void)state;
	struct ldcache cache;
	assert_int_equal(ldcache_open(&cache, "/"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ldcache_finds_libc_in_system_cache),
		cmocka_unit_test(test_ldcache_system_cache_has_no_such_library),
		cmocka_unit_test(test_ldcache_finds_each_entry_by_name),
		cmocka_unit_test(test_ldcache_ignores_entries_of_another_architecture),
		cmocka_unit_test(test_ldcache_prefers_baseline_entry_over_hwcaps_entry),
		cmocka_unit_test(test_ldcache_uses_hwcaps_entry_when_it_is_the_only_one),
		cmocka_unit_test(test_ldcache_accepts_an_empty_cache),
		cmocka_unit_test(test_ldcache_rejects_old_format),
		cmocka_unit_test(test_ldcache_rejects_big_endian_cache),
		cmocka_unit_test(test_ldcache_rejects_entry_count_past_the_end),
		cmocka_unit_test(test_ldcache_rejects_string_offset_past_the_end),
		cmocka_unit_test(test_ldcache_rejects_string_without_terminator),
		cmocka_unit_test(test_ldcache_rejects_truncated_copies_of_system_cache),
		cmocka_unit_test(test_ldcache_survives_random_corruption_of_system_cache),
		cmocka_unit_test(test_ldcache_open_of_missing_file_returns_enoent),
		cmocka_unit_test(test_ldcache_open_rejects_a_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
