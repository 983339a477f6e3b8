/* Unit tests of the DT_NEEDED closure walk: system programs, a patched copy, and this test itself. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "elf_closure.h"

#define TRUE_PROGRAM "/bin/true"

/*
 * This test program imports `connect` through its PLT and `send` through a GOT slot (the
 * noplt attribute makes the call load the address from the GOT, as -fno-plt does), so that
 * its own closure has imports with known kinds.
 */
ssize_t send(int fd, const void *buf, size_t len, int flags) __attribute__((noplt));

static void make_known_imports(void)
{
	/* Both fail with EBADF; only the references matter. */
	(void)connect(-1, NULL, 0);
	(void)send(-1, "", 0, 0);
}

/* ----- helpers ----- */

/* A temporary directory holding `prog`: a copy of /bin/true whose DT_NEEDED is libq.so.6. */
struct patched {
	char dir[64];
	char prog[128];
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
}

/* Reads a whole file; the caller frees it. */
static unsigned char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	unsigned char *data = malloc((size_t)n);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return data;
}

static void copy_file(const char *from, const char *to)
{
	size_t size;
	unsigned char *data = read_file(from, &size);
	write_file(to, data, size);
	free(data);
}

static void make_dir(struct patched *p, const char *name)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int patched_setup(void **state)
{
	struct patched *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	snprintf(p->dir, sizeof(p->dir), "/tmp/viaudit-closure.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->prog, sizeof(p->prog), "%s/prog", p->dir);
	size_t size;
	unsigned char *data = read_file(TRUE_PROGRAM, &size);
	static const char needle[] = "\0libc.so.6"; /* a whole string of .dynstr */
	unsigned char *hit = memmem(data, size, needle, sizeof(needle)); /* with its NUL */
	if (hit != NULL) {
		hit[4] = 'q'; /* "\0libc.so.6" -> "\0libq.so.6" */
		write_file(p->prog, data, size);
	}
	free(data);
	*state = p;
	return 0;
}

static int patched_teardown(void **state)
{
	struct patched *p = *state;
	nftw(p->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(p);
	return 0;
}

/* The patched program, or a skip when /bin/true did not name libc.so.6 as expected. */
static const char *patched_program(void **state)
{
	struct patched *p = *state;
	if (access(p->prog, F_OK) != 0) {
		print_message("%s has no DT_NEEDED libc.so.6 to patch\n", TRUE_PROGRAM);
		skip();
	}
	return p->prog;
}

/* Puts a copy of libc named libq.so.6 in DIR of the patched program's directory. */
static void install_libq(void **state, const char *dir)
{
	struct patched *p = *state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, TRUE_PROGRAM, NULL), 0);
	const char *libc = NULL;
	for (size_t i = 0; i < closure.count; i++) {
		const struct closure_object *o = &closure.objects[i];
		if (o->soname != NULL && strcmp(o->soname, "libc.so.6") == 0)
			libc = o->path;
	}
	assert_non_null(libc);
	make_dir(p, dir);
	char path[192];
	snprintf(path, sizeof(path), "%s/%s/libq.so.6", p->dir, dir);
	copy_file(libc, path);
	closure_free(&closure);
}

/* The object of the closure named `name` (DT_NEEDED entry or soname), or NULL. */
static const struct closure_object *find_object(const struct closure *closure, const char *name)
{
	for (size_t i = 0; i < closure->count; i++) {
		const struct closure_object *o = &closure->objects[i];
		if ((o->name && strcmp(o->name, name) == 0) ||
		    (o->soname && strcmp(o->soname, name) == 0))
			return o;
	}
	return NULL;
}

static const struct closure_object *find_source(const struct closure *closure,
						enum closure_source source)
{
	for (size_t i = 0; i < closure->count; i++) {
		if (closure->objects[i].source == source)
			return &closure->objects[i];
	}
	return NULL;
}

/* ----- the program ----- */

static void test_closure_starts_with_the_program(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, TRUE_PROGRAM, NULL), 0);
	assert_true(closure.count >= 1);
	assert_true(closure.objects[0].is_main);
	assert_int_equal(closure.objects[0].source, CLOSURE_FROM_PROGRAM);
	assert_string_equal(closure.objects[0].path, TRUE_PROGRAM);
	for (size_t i = 1; i < closure.count; i++)
		assert_false(closure.objects[i].is_main);
	closure_free(&closure);
}

static void test_closure_finds_program_in_exec_path(void **state)
{
	(void)state;
	struct closure closure;
	const struct closure_options options = { .exec_path = "/nonexistent::/usr/bin:/bin" };
	assert_int_equal(closure_build(&closure, "true", &options), 0);
	assert_int_equal(closure.objects[0].source, CLOSURE_FROM_PATH);
	assert_string_equal(strrchr(closure.objects[0].path, '/'), "/true");
	closure_free(&closure);
}

static void test_closure_of_missing_program_fails_with_enoent(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/nonexistent/prog", NULL), -ENOENT);
	assert_string_equal(closure.error, "No such file or directory");
	closure_free(&closure);
}

static void test_closure_of_program_not_in_exec_path_fails_with_enoent(void **state)
{
	(void)state;
	struct closure closure;
	const struct closure_options options = { .exec_path = "/nonexistent" };
	assert_int_equal(closure_build(&closure, "true", &options), -ENOENT);
	closure_free(&closure);
}

static void test_closure_of_text_file_fails_as_not_elf(void **state)
{
	struct patched *p = *state;
	char path[192];
	snprintf(path, sizeof(path), "%s/script", p->dir);
	write_file(path, "#!/bin/sh\nexit 0\n", 17);
	struct closure closure;
	assert_int_equal(closure_build(&closure, path, NULL), -ENOEXEC);
	assert_string_equal(closure.error, "not an ELF file");
	closure_free(&closure);
}

static void test_closure_of_empty_file_fails_as_not_elf(void **state)
{
	struct patched *p = *state;
	char path[192];
	snprintf(path, sizeof(path), "%s/empty", p->dir);
	write_file(path, "", 0);
	struct closure closure;
	assert_int_equal(closure_build(&closure, path, NULL), -ENOEXEC);
	closure_free(&closure);
}

static void test_closure_of_directory_fails_with_eisdir(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/", NULL), -EISDIR);
	closure_free(&closure);
}

/* ----- libc and the interpreter ----- */

static void test_closure_of_true_includes_libc(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, TRUE_PROGRAM, NULL), 0);
	const struct closure_object *libc = find_object(&closure, "libc.so.6");
	assert_non_null(libc);
	assert_non_null(libc->path);
	assert_string_equal(strrchr(libc->path, '/'), "/libc.so.6");
	assert_true(libc->source == CLOSURE_FROM_LDCACHE || libc->source == CLOSURE_FROM_DEFAULT_DIR);
	assert_int_equal(libc->loader, 0);
	closure_free(&closure);
}

static void test_closure_of_true_includes_the_interpreter_once(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, TRUE_PROGRAM, NULL), 0);
	const struct closure_object *interp = find_source(&closure, CLOSURE_FROM_INTERPRETER);
	assert_non_null(interp);
	assert_non_null(interp->path);
	assert_string_equal(interp->soname, "ld-linux-x86-64.so.2");
	size_t seen = 0;
	for (size_t i = 0; i < closure.count; i++)
		seen += closure.objects[i].soname != NULL &&
			strcmp(closure.objects[i].soname, "ld-linux-x86-64.so.2") == 0;
	assert_int_equal(seen, 1); /* libc's DT_NEEDED of it is the same object */
	closure_free(&closure);
}

static void test_closure_without_cache_uses_default_dirs(void **state)
{
	(void)state;
	struct closure closure;
	const struct closure_options options = { .cache_path = "/nonexistent/ld.so.cache" };
	assert_int_equal(closure_build(&closure, TRUE_PROGRAM, &options), 0);
	const struct closure_object *libc = find_object(&closure, "libc.so.6");
	assert_non_null(libc);
	assert_int_equal(libc->source, CLOSURE_FROM_DEFAULT_DIR);
	assert_string_equal(libc->path, "/lib/x86_64-linux-gnu/libc.so.6");
	closure_free(&closure);
}

static void test_closure_lists_each_object_once(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/proc/self/exe", NULL), 0);
	for (size_t i = 0; i < closure.count; i++) {
		for (size_t j = i + 1; j < closure.count; j++) {
			const struct closure_object *a = &closure.objects[i], *b = &closure.objects[j];
			if (a->path == NULL || b->path == NULL)
				continue;
			assert_false(a->dev == b->dev && a->ino == b->ino);
		}
	}
	closure_free(&closure);
}

/* ----- searching ----- */

static void test_closure_lists_missing_library_as_not_found(void **state)
{
	const char *prog = patched_program(state);
	struct closure closure;
	assert_int_equal(closure_build(&closure, prog, NULL), 0);
	const struct closure_object *libq = find_object(&closure, "libq.so.6");
	assert_non_null(libq);
	assert_null(libq->path);
	assert_int_equal(libq->source, CLOSURE_NOT_FOUND);
	assert_int_equal(libq->loader, 0);
	closure_free(&closure);
}

static void test_closure_expands_origin_in_ld_library_path(void **state)
{
	struct patched *p = *state;
	const char *prog = patched_program(state);
	install_libq(state, "sub");
	struct closure closure;
	const struct closure_options options = { .ld_library_path = "/nonexistent:$ORIGIN/sub" };
	assert_int_equal(closure_build(&closure, prog, &options), 0);
	const struct closure_object *libq = find_object(&closure, "libq.so.6");
	assert_non_null(libq);
	assert_int_equal(libq->source, CLOSURE_FROM_LD_LIBRARY_PATH);
	char expected[192];
	char *real = realpath(p->dir, NULL); /* $ORIGIN of a program has its links resolved */
	assert_non_null(real);
	snprintf(expected, sizeof(expected), "%s/sub/libq.so.6", real);
	free(real);
	assert_string_equal(libq->path, expected);
	closure_free(&closure);
}

static void test_closure_expands_braced_origin(void **state)
{
	const char *prog = patched_program(state);
	install_libq(state, "sub");
	struct closure closure;
	const struct closure_options options = { .ld_library_path = "${ORIGIN}/sub" };
	assert_int_equal(closure_build(&closure, prog, &options), 0);
	const struct closure_object *libq = find_object(&closure, "libq.so.6");
	assert_non_null(libq);
	assert_non_null(libq->path);
	assert_non_null(strstr(libq->path, "/sub/libq.so.6"));
	closure_free(&closure);
}

static void test_closure_skips_candidate_that_is_not_elf(void **state)
{
	struct patched *p = *state;
	const char *prog = patched_program(state);
	make_dir(p, "bad");
	char path[192];
	snprintf(path, sizeof(path), "%s/bad/libq.so.6", p->dir);
	write_file(path, "not a library\n", 14);
	install_libq(state, "good");
	struct closure closure;
	const struct closure_options options = { .ld_library_path = "$ORIGIN/bad:$ORIGIN/good" };
	assert_int_equal(closure_build(&closure, prog, &options), 0);
	const struct closure_object *libq = find_object(&closure, "libq.so.6");
	assert_non_null(libq);
	assert_non_null(libq->path);
	assert_non_null(strstr(libq->path, "/good/libq.so.6"));
	closure_free(&closure);
}

/* ----- imports ----- */

static void test_closure_reads_plt_import_of_this_test(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/proc/self/exe", NULL), 0);
	assert_int_equal(closure.objects[0].imports[VI_SYM_connect], CLOSURE_IMPORT_PLT);
	closure_free(&closure);
}

static void test_closure_reads_got_import_of_this_test(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/proc/self/exe", NULL), 0);
	assert_int_equal(closure.objects[0].imports[VI_SYM_send], CLOSURE_IMPORT_GOT);
	closure_free(&closure);
}

static void test_closure_ignores_symbols_this_test_does_not_import(void **state)
{
	(void)state;
	struct closure closure;
	assert_int_equal(closure_build(&closure, "/proc/self/exe", NULL), 0);
	assert_int_equal(closure.objects[0].imports[VI_SYM_epoll_pwait], 0);
	assert_int_equal(closure.objects[0].imports[VI_SYM_accept4], 0);
	closure_free(&closure);
}

int main(void)
{
	make_known_imports();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closure_starts_with_the_program),
		cmocka_unit_test(test_closure_finds_program_in_exec_path),
		cmocka_unit_test(test_closure_of_missing_program_fails_with_enoent),
		cmocka_unit_test(test_closure_of_program_not_in_exec_path_fails_with_enoent),
		cmocka_unit_test_setup_teardown(test_closure_of_text_file_fails_as_not_elf,
						patched_setup, patched_teardown),
		cmocka_unit_test_setup_teardown(test_closure_of_empty_file_fails_as_not_elf,
						patched_setup, patched_teardown),
		cmocka_unit_test(test_closure_of_directory_fails_with_eisdir),
		cmocka_unit_test(test_closure_of_true_includes_libc),
		cmocka_unit_test(test_closure_of_true_includes_the_interpreter_once),
		cmocka_unit_test(test_closure_without_cache_uses_default_dirs),
		cmocka_unit_test(test_closure_lists_each_object_once),
		cmocka_unit_test_setup_teardown(test_closure_lists_missing_library_as_not_found,
						patched_setup, patched_teardown),
		cmocka_unit_test_setup_teardown(test_closure_expands_origin_in_ld_library_path,
						patched_setup, patched_teardown),
		cmocka_unit_test_setup_teardown(test_closure_expands_braced_origin, patched_setup,
						patched_teardown),
		cmocka_unit_test_setup_teardown(test_closure_skips_candidate_that_is_not_elf,
						patched_setup, patched_teardown),
		cmocka_unit_test(test_closure_reads_plt_import_of_this_test),
		cmocka_unit_test(test_closure_reads_got_import_of_this_test),
		cmocka_unit_test(test_closure_ignores_symbols_this_test_does_not_import),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
