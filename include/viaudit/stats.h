/* The layout of the stats segment in which each interposed process publishes its connections, read by `viaudit stat`. */
#ifndef VIAUDIT_STATS_H
#define VIAUDIT_STATS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * One segment per process: the file VI_STATS_DIR "/" VI_STATS_PREFIX "<PID>", mode 0600,
 * made (O_EXCL) by the process when it makes its first virtual socket and mapped
 * MAP_SHARED. A header, then VI_STATS_SLOTS connection slots. Only the owning process
 * writes; readers map it read-only and never ask the process anything, so a process that
 * is busy or blocked is read the same way.
 *
 * Nothing removes the file when the process dies (SIGKILL gives no chance to), nor when it
 * execs. A reader treats a segment as stale -- and removes it -- when its PID is gone, when
 * /proc/PID/stat gives another start time (the PID was reused), or when the process no
 * longer maps the file (it exec'd).
 */
#define VI_STATS_DIR "/dev/shm"
#define VI_STATS_PREFIX "viaudit-stat-"
#define VI_STATS_MAGIC UINT64_C(0x3174617473696976) /* "vistat1" + NUL, little-endian */
#define VI_STATS_VERSION 1
#define VI_STATS_SLOTS 4096 /* connections of one process shown at most; see `dropped` */

#define VI_STATS_PROGRAM_MAX 64
#define VI_STATS_TRANSPORT_MAX 8
#define VI_STATS_ADDR_MAX 48 /* "[ffff:...:ffff]:65535" */
#define VI_STATS_CALLER_MAX 64
#define VI_STATS_RULE_MAX 96   /* "FILE:LINE", the end of it when longer */
#define VI_STATS_REASON_MAX 160

/* The segment's header: fixed once `magic` is set (last, with release), but the counters. */
struct vi_stats_header {
	_Atomic uint64_t magic;
	uint32_t version;
	uint32_t header_size; /* sizeof(struct vi_stats_header) */
	uint32_t slot_size;   /* sizeof(struct vi_stats_slot) */
	uint32_t slot_count;
	int32_t pid;
	uint32_t reserved;
	uint64_t start_time; /* field 22 of /proc/PID/stat: clock ticks after boot */
	char program[VI_STATS_PROGRAM_MAX];
	_Atomic uint32_t slot_high;  /* one past the highest slot ever used: readers stop there */
	_Atomic uint32_t free_hint;  /* the writer's: no slot below it is free */
	_Atomic uint64_t published;  /* connections ever published */
	_Atomic uint64_t dropped;    /* connections not published because every slot was taken */
	char padding[128];
};

/* The kinds of socket a slot describes. */
enum vi_stats_kind {
	VI_STATS_FREE = 0,
	VI_STATS_STREAM = 1,   /* a connection */
	VI_STATS_LISTENER = 2, /* a listening socket */
};

/* Bits of vi_stats_slot.state; none set on a stream means established. */
#define VI_STATS_LISTENING 0x01u  /* a listening socket */
#define VI_STATS_CONNECTING 0x02u /* a non-blocking connect: no byte has moved yet */
#define VI_STATS_SHUT_RD 0x04u    /* this side shut its reading half */
#define VI_STATS_SHUT_WR 0x08u    /* this side shut its writing half (its FIN is sent) */
#define VI_STATS_PEER_EOF 0x10u   /* a read returned the end of the peer's stream */
#define VI_STATS_RESET 0x20u      /* a call failed with ECONNRESET or EPIPE */

/*
 * One socket. The identity (fd .. reason) is written at open, and again when the transport
 * changes, under the seqlock `seq`: odd while a writer is inside. The live fields below it
 * are single atomics written at any time (the data path adds to the byte counts with a
 * relaxed load and store, no lock); a reader takes them inside the same seq window, so a
 * snapshot never mixes two connections that used the slot one after the other.
 */
struct vi_stats_slot {
	_Atomic uint32_t seq;
	_Atomic uint32_t claimed; /* the writer's allocation flag */
	int32_t fd;               /* the descriptor it was made on */
	uint32_t kind;            /* enum vi_stats_kind */
	uint64_t opened_ms;       /* CLOCK_REALTIME, milliseconds */
	char transport[VI_STATS_TRANSPORT_MAX]; /* "shm", "tcp" */
	char local[VI_STATS_ADDR_MAX];
	char peer[VI_STATS_ADDR_MAX]; /* "" for a listener, "?" while unknown */
	char caller[VI_STATS_CALLER_MAX]; /* the object that made it, as in the conns log */
	char rule[VI_STATS_RULE_MAX];     /* the policy rule that routed it, FILE:LINE */
	char reason[VI_STATS_REASON_MAX]; /* why it is not on the transport its rule asked for */
	/* live fields, one cache line */
	_Atomic uint64_t bytes_in; /* bytes handed to the program */
	_Atomic uint64_t bytes_out; /* bytes the program wrote that were accepted */
	_Atomic uint64_t handoffs;  /* fork handoffs of this connection */
	_Atomic uint64_t reconnects; /* endpoints replaced after a fault */
	_Atomic uint32_t state;     /* VI_STATS_* bits */
	_Atomic uint32_t watch;     /* the writer's: the transport id the identity shows */
	char padding[24];
};

_Static_assert(sizeof(struct vi_stats_header) == 256, "stats header layout");
_Static_assert(sizeof(struct vi_stats_slot) == 512, "stats slot layout");
_Static_assert(offsetof(struct vi_stats_slot, bytes_in) % 64 == 0, "live fields share a line");

/* Bytes of a segment with `slots` slots. */
static inline size_t vi_stats_segment_size(uint32_t slots)
{
	return sizeof(struct vi_stats_header) + (size_t)slots * sizeof(struct vi_stats_slot);
}

static inline struct vi_stats_slot *vi_stats_slots(const struct vi_stats_header *h)
{
	return (struct vi_stats_slot *)(void *)((char *)(uintptr_t)h + sizeof(*h));
}

/* Whether `size` bytes at `map` are a complete segment of this layout. Returns 0 or -errno. */
static inline int vi_stats_header_check(const void *map, size_t size)
{
	const struct vi_stats_header *h = map;
	if (size < sizeof(*h))
		return -EPROTO;
	/* Acquire pairs with the release that publishes the header (stats_segment_create). */
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != VI_STATS_MAGIC)
		return -EAGAIN; /* not a segment, or one still being made */
	if (h->version != VI_STATS_VERSION || h->header_size != sizeof(*h) ||
	    h->slot_size != sizeof(struct vi_stats_slot) || h->slot_count == 0 ||
	    size < vi_stats_segment_size(h->slot_count))
		return -EPROTO;
	return 0;
}

/* A consistent copy of one slot. */
struct vi_stats_snapshot {
	int32_t fd;
	uint32_t kind;
	uint64_t opened_ms;
	char transport[VI_STATS_TRANSPORT_MAX];
	char local[VI_STATS_ADDR_MAX];
	char peer[VI_STATS_ADDR_MAX];
	char caller[VI_STATS_CALLER_MAX];
	char rule[VI_STATS_RULE_MAX];
	char reason[VI_STATS_REASON_MAX];
	uint64_t bytes_in, bytes_out, handoffs, reconnects;
	uint32_t state;
};

/*
 * Copies a slot without taking any lock. Returns 1 with `out` filled, 0 when the slot is
 * free, or -EAGAIN when a writer stayed inside for all of `tries` attempts (a writer that
 * died inside leaves the slot so for good).
 */
static inline int vi_stats_slot_read(const struct vi_stats_slot *slot,
				     struct vi_stats_snapshot *out, unsigned tries)
{
	for (unsigned i = 0; i < tries; i++) {
		/* Acquire pairs with the release that ends a write (stats_slot_write_end). */
		uint32_t before = atomic_load_explicit(&slot->seq, memory_order_acquire);
		if (before & 1u)
			continue;
		out->fd = slot->fd;
		out->kind = slot->kind;
		out->opened_ms = slot->opened_ms;
		memcpy(out->transport, slot->transport, sizeof(out->transport));
		memcpy(out->local, slot->local, sizeof(out->local));
		memcpy(out->peer, slot->peer, sizeof(out->peer));
		memcpy(out->caller, slot->caller, sizeof(out->caller));
		memcpy(out->rule, slot->rule, sizeof(out->rule));
		memcpy(out->reason, slot->reason, sizeof(out->reason));
		out->bytes_in = atomic_load_explicit(&slot->bytes_in, memory_order_relaxed);
		out->bytes_out = atomic_load_explicit(&slot->bytes_out, memory_order_relaxed);
		out->handoffs = atomic_load_explicit(&slot->handoffs, memory_order_relaxed);
		out->reconnects = atomic_load_explicit(&slot->reconnects, memory_order_relaxed);
		out->state = atomic_load_explicit(&slot->state, memory_order_relaxed);
		/*
		 * The copies above may race with a writer that began after `before` (the seqlock
		 * protocol: the copy is thrown away then). The fence keeps them before the second
		 * look at seq; it pairs with the release fence after a writer makes seq odd.
		 */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != before)
			continue;
		if (out->kind == VI_STATS_FREE)
			return 0;
		out->transport[sizeof(out->transport) - 1] = '\0';
		out->local[sizeof(out->local) - 1] = '\0';
		out->peer[sizeof(out->peer) - 1] = '\0';
		out->caller[sizeof(out->caller) - 1] = '\0';
		out->rule[sizeof(out->rule) - 1] = '\0';
		out->reason[sizeof(out->reason) - 1] = '\0';
		return 1;
	}
	return -EAGAIN;
}

/*
 * Field 22 (starttime) of the text of /proc/PID/stat. Returns 0 or -EPROTO. The command
 * name (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
 */
static inline int vi_stats_parse_start_time(const char *text, uint64_t *out)
{
	const char *p = strrchr(text, ')');
	if (p == NULL)
		return -EPROTO;
	p++;
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return -EPROTO;
		if (field == 22) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p || errno != 0)
				return -EPROTO;
			*out = v;
			return 0;
		}
		while (*p != ' ' && *p != '\0')
			p++;
	}
	return -EPROTO;
}

#endif
