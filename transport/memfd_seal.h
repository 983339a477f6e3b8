/* Shared memory for one same-host connection: a memfd sealed so that it can never change size. */
#ifndef VI_TRANSPORT_MEMFD_SEAL_H
#define VI_TRANSPORT_MEMFD_SEAL_H

#include <stddef.h>

/*
 * Both processes map the whole memfd. If either could shrink it, the other's next access past
 * the new end would raise SIGBUS in a program that never asked for shared memory; if either
 * could grow it, the sizes the two sides believe in would differ. So the creator seals it
 * against growing and shrinking, and seals the seals; the receiver checks those seals and the
 * size before it maps anything (DESIGN.md, "Same-host transport").
 *
 * Plain libc calls here too; see door.h about the vi_libc table.
 */

/*
 * Creates a memfd of SIZE bytes (close-on-exec), sealed with F_SEAL_GROW, F_SEAL_SHRINK and
 * F_SEAL_SEAL. NAME shows in /proc/PID/maps as "/memfd:NAME". Returns the fd, or -errno
 * (-EINVAL for SIZE 0).
 */
int memfd_seal_create(const char *name, size_t size);

/*
 * Checks a memfd received from a peer: it must carry the grow, shrink and seal seals, no
 * write seal (the mapping is writable), and be exactly EXPECTED_SIZE bytes.
 * Returns 0, or -EPROTO when it is not such a memfd.
 */
int memfd_seal_check(int fd, size_t expected_size);

/*
 * Maps SIZE bytes of FD shared, readable and writable. Returns the address, or MAP_FAILED
 * with -errno stored in *ERROR (when ERROR is not NULL). Check the fd first.
 */
void *memfd_seal_map(int fd, size_t size, int *error);

/* Unmaps what memfd_seal_map returned. Returns 0 or -errno. */
int memfd_seal_unmap(void *addr, size_t size);

#endif
