/* Creating, checking and mapping the sealed memfd that holds a connection's shared memory. */
#include "memfd_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMFD_SEALS_REQUIRED (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)
#define MEMFD_SEALS_FORBIDDEN (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

int memfd_seal_create(const char *name, size_t size)
{
	int fd, r;

	if (size == 0 || (uint64_t)size > (uint64_t)INT64_MAX)
		return -EINVAL;
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* The size first: once F_SEAL_GROW is on, not even the creator can set it. */
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, MEMFD_SEALS_REQUIRED) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int memfd_seal_check(int fd, size_t expected_size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return -EPROTO;
	if ((seals & MEMFD_SEALS_REQUIRED) != MEMFD_SEALS_REQUIRED ||
	    (seals & MEMFD_SEALS_FORBIDDEN) != 0)
		return -EPROTO;
	/* Read after the seals: with F_SEAL_GROW and F_SEAL_SHRINK on, this size is final. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (unsigned long long)st.st_size != (unsigned long long)expected_size)
		return -EPROTO;
	return 0;
}

void *memfd_seal_map(int fd, size_t size, int *error)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED && error != NULL)
		*error = -errno;
	return p;
}

int memfd_seal_unmap(void *addr, size_t size)
{
	return munmap(addr, size) < 0 ? -errno : 0;
}
