/* The program's libc: the real socket functions and errno, as the audit layer found them. */
#ifndef VI_TRANSPORT_LIBC_H
#define VI_TRANSPORT_LIBC_H

#include <dlfcn.h>
#include <viaudit/symbols.h>

/*
 * The audit module runs in its own link namespace with its own copy of libc. Its errno is
 * not the program's, and its functions are not the ones the program's other objects call.
 * Every call viaudit makes on the program's behalf goes through this table instead: the
 * addresses are looked up in the base namespace's libc.so.6 by audit/elf_dynamic.c before
 * any rebinding happens.
 */
struct vi_libc {
#define VI_LIBC_POINTER(name, class, ret, params, args) ret(*name) params;
	VI_SYMBOLS(VI_LIBC_POINTER)
#undef VI_LIBC_POINTER
	int *(*errno_location)(void);
	void *(*dlopen)(const char *file, int mode);
	void *(*dlmopen)(Lmid_t lmid, const char *file, int mode);
	void *(*dlsym)(void *handle, const char *name);
	int (*register_atfork)(void (*prepare)(void), void (*parent)(void), void (*child)(void),
			       void *dso_handle);
	/* The program's libc's __libc_single_threaded: nonzero until a second thread is made. */
	const char *single_threaded;
};

extern struct vi_libc vi_libc;

/* Whether every pointer in vi_libc was found. */
int vi_libc_complete(void);

/* The program's errno (not the module's own libc's). */
static inline int vi_libc_errno(void)
{
	return *vi_libc.errno_location();
}

static inline void vi_libc_set_errno(int e)
{
	*vi_libc.errno_location() = e;
}

/*
 * Whether the program has only ever had one thread (then locks guarding against a second
 * one can be skipped). Once false it stays false.
 */
static inline int vi_libc_single_threaded(void)
{
	return vi_libc.single_threaded != NULL && *(const volatile char *)vi_libc.single_threaded;
}

/* Converts a libc-style result (-1 + program errno) into >= 0 or -errno. */
static inline long vi_libc_result(long r)
{
	return r < 0 ? -(long)vi_libc_errno() : r;
}

#endif
