/* A reader of the dynamic linker's cache (/etc/ld.so.cache), for `viaudit explain`. */
#ifndef VIAUDIT_CLI_LDCACHE_H
#define VIAUDIT_CLI_LDCACHE_H

#include <stddef.h>
#include <stdint.h>

/* The flags an x86-64 ld.so accepts in a cache entry: FLAG_ELF_LIBC6 | FLAG_X8664_LIB64. */
#define LDCACHE_FLAGS_X86_64 0x0303

/*
 * A cache read into memory and checked once: every entry and every string offset lies
 * inside the file and every string ends inside it, so lookups need no further checks.
 */
struct ldcache {
	unsigned char *data;
	size_t size;
	uint32_t nentries;
};

/*
 * Reads and checks the cache at `path` (glibc's "glibc-ld.so.cache1.1" format, little
 * endian, as ldconfig has written it since glibc 2.32). Returns 0, or -errno: -ENOENT and
 * the like from opening the file, -EINVAL for a file that is not such a cache or is
 * truncated or corrupt.
 */
int ldcache_open(struct ldcache *cache, const char *path);

/* Checks `size` bytes of cache text and takes a copy of them. Returns 0, -EINVAL or -ENOMEM. */
int ldcache_parse(struct ldcache *cache, const void *data, size_t size);

/*
 * The path the cache gives for library `name` with entry flags `flags` (ld.so compares them
 * for equality), or NULL. An entry for a glibc-hwcaps or legacy hwcap subdirectory is used
 * only when the cache has no baseline entry for the name: it is the same library built for
 * another ISA level, so the baseline one tells the same story about its imports.
 */
const char *ldcache_lookup(const struct ldcache *cache, const char *name, uint32_t flags);

void ldcache_close(struct ldcache *cache);

#endif
