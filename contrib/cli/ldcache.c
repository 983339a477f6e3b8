/* Reads /etc/ld.so.cache in glibc's new format and looks libraries up in it as ld.so does. */
#include "ldcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The layout, from glibc's sysdeps/generic/dl-cache.h (struct cache_file_new):
 *
 *   offset  0  char magic[17] "glibc-ld.so.cache", char version[3] "1.1"
 *          20  uint32 nlibs         number of entries
 *          24  uint32 len_strings   size of the string table (after the entries)
 *          28  uint8  flags         endianness: 0 unset, 1 invalid, 2 little, 3 big
 *          29  uint8  padding[3]
 *          32  uint32 extension_offset
 *          36  uint32 unused[3]
 *          48  struct file_entry_new libs[nlibs], 24 bytes each:
 *                int32 flags, uint32 key, uint32 value, uint32 osversion, uint64 hwcap
 *
 * key (the library's name, as in DT_NEEDED) and value (its path) are offsets from the start
 * of the file. The older "ld.so-1.7.0" format, which ldconfig stopped writing in glibc 2.32,
 * is not read.
 */
#define LDCACHE_MAGIC "glibc-ld.so.cache1.1"
#define LDCACHE_MAGIC_LEN 20
#define LDCACHE_HEADER_SIZE 48
#define LDCACHE_ENTRY_SIZE 24
#define LDCACHE_ENDIAN_OFFSET 28
#define LDCACHE_ENDIAN_INVALID 1
#define LDCACHE_ENDIAN_BIG 3
#define LDCACHE_MAX_SIZE (256u << 20) /* far beyond any real cache; bounds the read */

struct ldcache_entry {
	uint32_t flags;
	uint32_t key;
	uint32_t value;
	uint64_t hwcap;
};

static uint32_t ldcache_read_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t ldcache_read_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static struct ldcache_entry ldcache_entry_at(const unsigned char *data, uint32_t index)
{
	const unsigned char *p = data + LDCACHE_HEADER_SIZE + (size_t)index * LDCACHE_ENTRY_SIZE;
	return (struct ldcache_entry){
		.flags = ldcache_read_u32(p),
		.key = ldcache_read_u32(p + 4),
		.value = ldcache_read_u32(p + 8),
		.hwcap = ldcache_read_u64(p + 16),
	};
}

/* Whether a NUL-terminated string starts at `offset` and ends inside the data. */
static bool ldcache_string_is_valid(const unsigned char *data, size_t size, uint32_t offset)
{
	return offset < size && memchr(data + offset, '\0', size - offset) != NULL;
}

/* Checks the header and every entry of `size` bytes at `data`; returns 0 or -EINVAL. */
static int ldcache_check(const unsigned char *data, size_t size)
{
	if (size < LDCACHE_HEADER_SIZE || memcmp(data, LDCACHE_MAGIC, LDCACHE_MAGIC_LEN) != 0)
		return -EINVAL;
	unsigned endian = data[LDCACHE_ENDIAN_OFFSET] & 3;
	if (endian == LDCACHE_ENDIAN_INVALID || endian == LDCACHE_ENDIAN_BIG)
		return -EINVAL; /* written for another machine */
	uint32_t nentries = ldcache_read_u32(data + 20);
	if ((uint64_t)nentries * LDCACHE_ENTRY_SIZE > size - LDCACHE_HEADER_SIZE)
		return -EINVAL;
	for (uint32_t i = 0; i < nentries; i++) {
		struct ldcache_entry e = ldcache_entry_at(data, i);
		if (!ldcache_string_is_valid(data, size, e.key) ||
		    !ldcache_string_is_valid(data, size, e.value))
			return -EINVAL;
	}
	return 0;
}

int ldcache_parse(struct ldcache *cache, const void *data, size_t size)
{
	memset(cache, 0, sizeof(*cache));
	int err = ldcache_check(data, size);
	if (err < 0)
		return err;
	cache->data = malloc(size);
	if (cache->data == NULL)
		return -ENOMEM;
	memcpy(cache->data, data, size);
	cache->size = size;
	cache->nentries = ldcache_read_u32(cache->data + 20);
	return 0;
}

/* Reads all of `fd` into a new buffer; returns its size or -errno. */
static ssize_t ldcache_read_file(int fd, unsigned char **out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)LDCACHE_MAX_SIZE)
		return -EINVAL;
	size_t size = (size_t)st.st_size;
	unsigned char *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return -ENOMEM;
	size_t done = 0;
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EINVAL; /* shrank while we read it */
			free(buf);
			return err;
		}
		done += (size_t)n;
	}
	*out = buf;
	return (ssize_t)size;
}

int ldcache_open(struct ldcache *cache, const char *path)
{
	memset(cache, 0, sizeof(*cache));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unsigned char *data = NULL;
	ssize_t size = ldcache_read_file(fd, &data);
	close(fd);
	if (size < 0)
		return (int)size;
	int err = ldcache_check(data, (size_t)size);
	if (err < 0) {
		free(data);
		return err;
	}
	cache->data = data;
	cache->size = (size_t)size;
	cache->nentries = ldcache_read_u32(data + 20);
	return 0;
}

const char *ldcache_lookup(const struct ldcache *cache, const char *name, uint32_t flags)
{
	const char *hwcap_variant = NULL;
	for (uint32_t i = 0; i < cache->nentries; i++) {
		struct ldcache_entry e = ldcache_entry_at(cache->data, i);
		if (e.flags != flags || strcmp((const char *)cache->data + e.key, name) != 0)
			continue;
		if (e.hwcap == 0)
			return (const char *)cache->data + e.value;
		if (hwcap_variant == NULL)
			hwcap_variant = (const char *)cache->data + e.value;
	}
	return hwcap_variant;
}

void ldcache_close(struct ldcache *cache)
{
	free(cache->data);
	memset(cache, 0, sizeof(*cache));
}
