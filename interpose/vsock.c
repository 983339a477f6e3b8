/* The virtual socket table and the lifetime of virtual sockets. */
#include "vsock.h"

#include "stats.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

struct vsock_table vsock_table;

/* Caps the table at 1 Mi descriptors (8 MiB of address space, paid for only when touched). */
#define VSOCK_TABLE_MAX (1u << 20)

int vsock_table_init(void)
{
	struct rlimit rl;
	size_t size = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		size = rl.rlim_max;
	if (size > VSOCK_TABLE_MAX)
		size = VSOCK_TABLE_MAX;
	if (size < 1024)
		size = 1024;
	void *p = mmap(NULL, size * sizeof(vsock_table.slots[0]), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	vsock_table.slots = p;
	vsock_table.size = size;
	return 0;
}

/*
 * Virtual sockets come from a pool of mmap'd chunks, not from malloc: the module's own libc
 * decides whether to lock its heap from its own idea of whether the process is threaded,
 * and threads are made by the program's libc, so its malloc is not safe to call from two
 * program threads at once.
 */
static struct {
	atomic_flag lock;
	struct vsock *free; /* linked through next_free */
} vsock_pool = { .lock = ATOMIC_FLAG_INIT };

#define VSOCK_CHUNK_BYTES (64 * 1024)

static void vsock_pool_lock(void)
{
	/* Acquire pairs with the release in vsock_pool_unlock. */
	while (atomic_flag_test_and_set_explicit(&vsock_pool.lock, memory_order_acquire))
		;
}

static void vsock_pool_unlock(void)
{
	atomic_flag_clear_explicit(&vsock_pool.lock, memory_order_release);
}

static struct vsock *vsock_alloc(void)
{
	vsock_pool_lock();
	if (vsock_pool.free == NULL) {
		struct vsock *chunk = mmap(NULL, VSOCK_CHUNK_BYTES, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (chunk == MAP_FAILED) {
			vsock_pool_unlock();
			return NULL;
		}
		size_t n = VSOCK_CHUNK_BYTES / sizeof(*chunk);
		for (size_t i = 0; i < n; i++) {
			chunk[i].next_free = vsock_pool.free;
			vsock_pool.free = &chunk[i];
		}
	}
	struct vsock *vs = vsock_pool.free;
	vsock_pool.free = vs->next_free;
	vsock_pool_unlock();
	unsigned generation = vs->generation + 1;
	memset(vs, 0, sizeof(*vs));
	vs->generation = generation;
	return vs;
}

static void vsock_release(struct vsock *vs)
{
	vsock_pool_lock();
	vs->next_free = vsock_pool.free;
	vsock_pool.free = vs;
	vsock_pool_unlock();
}

struct vsock *vsock_new(enum vsock_kind kind, const struct vi_route_choice *choice,
			enum vi_proto proto)
{
	struct vsock *vs = vsock_alloc();
	if (vs == NULL)
		return NULL;
	atomic_init(&vs->refs, 1);
	vs->kind = kind;
	vs->choice = *choice;
	vs->proto = proto;
	return vs;
}

struct vsock *vsock_ref(struct vsock *vs)
{
	atomic_fetch_add_explicit(&vs->refs, 1, memory_order_relaxed);
	return vs;
}

static void vsock_unref(struct vsock *vs)
{
	/* Acq_rel: the last owner must see every other owner's writes before it frees. */
	if (atomic_fetch_sub_explicit(&vs->refs, 1, memory_order_acq_rel) != 1)
		return;
	stats_unpublish(vs);
	if (vs->kind == VSOCK_STREAM)
		vi_conn_destroy(&vs->conn);
	else if (vs->listener != NULL)
		vi_shm_listener_close(vs->listener);
	vsock_release(vs);
}

int vsock_install(int fd, struct vsock *vs)
{
	if (fd < 0 || (size_t)fd >= vsock_table.size) {
		vsock_unref(vs);
		return -EMFILE;
	}
	size_t high = atomic_load_explicit(&vsock_table.high, memory_order_relaxed);
	while ((size_t)fd + 1 > high &&
	       !atomic_compare_exchange_weak(&vsock_table.high, &high, (size_t)fd + 1))
		;
	/* Release pairs with the acquire in vsock_get. */
	struct vsock *old = atomic_exchange_explicit(&vsock_table.slots[fd], vs,
						     memory_order_acq_rel);
	if (old != NULL)
		vsock_unref(old);
	return 0;
}

void vsock_forget(int fd)
{
	if (fd < 0 || (size_t)fd >= vsock_table.size)
		return;
	struct vsock *old = atomic_exchange_explicit(&vsock_table.slots[fd], NULL,
						     memory_order_acq_rel);
	if (old != NULL)
		vsock_unref(old);
}

void vsock_for_each(void (*fn)(int fd, struct vsock *vs))
{
	size_t high = atomic_load_explicit(&vsock_table.high, memory_order_acquire);
	for (size_t fd = 0; fd < high; fd++) {
		struct vsock *vs = atomic_load_explicit(&vsock_table.slots[fd], memory_order_acquire);
		if (vs != NULL)
			fn((int)fd, vs);
	}
}
