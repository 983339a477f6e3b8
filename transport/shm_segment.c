/* The shared-memory segment of one same-host connection: its size, its layout, and the check of a peer's segment. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "shm_segment.h"

_Static_assert(sizeof(struct shm_segment_control) <= SHM_SEGMENT_CONTROL_SIZE,
	       "the control segment fits in one page");
_Static_assert(SHM_SEGMENT_CONTROL_SIZE % SHM_CACHE_LINE == 0, "ring data starts on a cache line");

static int shm_ring_size_valid(uint64_t ring_size)
{
	return ring_size >= SHM_RING_SIZE_MIN && ring_size <= SHM_RING_SIZE_MAX &&
	       (ring_size & (ring_size - 1)) == 0;
}

/* Returns the size, or -EINVAL. */
ssize_t shm_segment_size(size_t ring_size)
{
	if (!shm_ring_size_valid(ring_size))
		return -EINVAL;
	/* At most 4 KiB + 2 GiB: no overflow in a ssize_t. */
	return (ssize_t)(SHM_SEGMENT_CONTROL_SIZE + 2 * ring_size);
}

/* Returns 0 or -EINVAL. */
int shm_segment_init(void *base, size_t size, size_t ring_size)
{
	ssize_t want = shm_segment_size(ring_size);

	if (base == NULL || ((uintptr_t)base % SHM_CACHE_LINE) != 0 || want < 0 || size != (size_t)want)
		return -EINVAL;
	struct shm_segment_control *control = base;
	memset(control, 0, SHM_SEGMENT_CONTROL_SIZE);
	control->header = (struct shm_segment_header){
		.magic = SHM_SEGMENT_MAGIC,
		.version = SHM_SEGMENT_VERSION,
		.control_size = SHM_SEGMENT_CONTROL_SIZE,
		.ring_size = ring_size,
		.segment_size = (uint64_t)want,
	};
	return 0;
}

/* Returns 0, -EINVAL or -EPROTO. */
int shm_segment_attach(void *base, size_t size, enum shm_segment_side side, struct shm_ring *tx,
		       struct shm_ring *rx)
{
	if (base == NULL || ((uintptr_t)base % SHM_CACHE_LINE) != 0 || tx == NULL || rx == NULL ||
	    (side != SHM_SEGMENT_CONNECTOR && side != SHM_SEGMENT_ACCEPTOR))
		return -EINVAL;
	if (size < SHM_SEGMENT_CONTROL_SIZE)
		return -EINVAL;

	/* One copy, then only the copy is looked at: the peer may be rewriting the original. */
	struct shm_segment_control *control = base;
	struct shm_segment_header header;
	memcpy(&header, &control->header, sizeof(header));
	if (header.magic != SHM_SEGMENT_MAGIC || header.version != SHM_SEGMENT_VERSION ||
	    header.control_size != SHM_SEGMENT_CONTROL_SIZE)
		return -EPROTO;
	if (!shm_ring_size_valid(header.ring_size))
		return -EPROTO;
	uint64_t want = SHM_SEGMENT_CONTROL_SIZE + 2 * header.ring_size;
	if (header.segment_size != want || (uint64_t)size != want)
		return -EPROTO;

	unsigned char *data = (unsigned char *)base + SHM_SEGMENT_CONTROL_SIZE;
	size_t ring_size = (size_t)header.ring_size;
	int out = side == SHM_SEGMENT_CONNECTOR ? 0 : 1;
	int in = 1 - out;
	int r = shm_ring_init(tx, &control->rings[out], data + (size_t)out * ring_size, ring_size,
			      SHM_RING_PRODUCER, &control->reset, &control->rings[in]);
	if (r < 0)
		return r == -EPROTO ? r : -EINVAL;
	r = shm_ring_init(rx, &control->rings[in], data + (size_t)in * ring_size, ring_size,
			  SHM_RING_CONSUMER, &control->reset, &control->rings[out]);
	if (r < 0)
		return r == -EPROTO ? r : -EINVAL;
	return 0;
}
