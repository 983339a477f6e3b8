/* The virtual socket table: an array indexed by fd, so an fd call's lookup is one load. */
#ifndef VI_VSOCK_H
#define VI_VSOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <transport.h>

#include "interpose.h"

struct vi_stats_slot;

enum vsock_kind {
	VSOCK_LISTENER, /* a listening socket whose accepts are routed */
	VSOCK_STREAM,   /* a connected stream carried by conn */
};

/* A virtual socket. Every descriptor that refers to it (dup, dup2, ...) holds a reference. */
struct vsock {
	atomic_int refs;
	enum vsock_kind kind;
	atomic_bool nonblock;          /* O_NONBLOCK of the open file description */
	unsigned generation;           /* bumped on every reuse, so a stale pointer can be told */
	struct vi_route_choice choice; /* why it is routed */
	enum vi_proto proto;
	struct shm_listener *listener; /* VSOCK_LISTENER: its door, or NULL */
	struct vsock *next_free;       /* pool link while free */
	_Atomic(struct vi_stats_slot *) stat; /* its slot in the stats segment, or NULL (stats.h) */
	struct vi_conn conn;           /* VSOCK_STREAM only */
};

struct vsock_table {
	_Atomic(struct vsock *) *slots; /* indexed by fd; reserved address space, touched lazily */
	size_t size;
	atomic_size_t high; /* one past the highest fd ever installed */
};

extern struct vsock_table vsock_table;

/* Reserves a table as large as the process's hard descriptor limit. Returns 0 or -errno. */
int vsock_table_init(void);

/* The virtual socket behind fd, or NULL: the only cost an fd call on a plain fd pays. */
static inline struct vsock *vsock_get(int fd)
{
	if ((size_t)(unsigned)fd >= vsock_table.size)
		return NULL;
	/* Acquire pairs with the release in vsock_install: a reader sees a fully built vsock. */
	return atomic_load_explicit(&vsock_table.slots[fd], memory_order_acquire);
}

/* A new virtual socket with one reference, or NULL when out of memory. */
struct vsock *vsock_new(enum vsock_kind kind, const struct vi_route_choice *choice,
			enum vi_proto proto);

/* Makes fd refer to vs (taking over one reference). Returns 0 or -EMFILE past the table. */
int vsock_install(int fd, struct vsock *vs);

/* Adds a reference for a new descriptor (dup). */
struct vsock *vsock_ref(struct vsock *vs);

/* Removes fd from the table and drops its reference. */
void vsock_forget(int fd);

/* Calls fn for every virtual socket in the table (fork hooks). */
void vsock_for_each(void (*fn)(int fd, struct vsock *vs));

#endif
