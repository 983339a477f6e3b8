/* The publishing side of `viaudit stat`: this process's stats segment, its slots, and their lives across fork and exec. */
#include "stats.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libc.h>

#include "sockaddr.h"

/* The watch value that sends the next byte of a slot's connection through stats_note_change. */
#define STATS_WATCH_RECHECK UINT32_MAX

/* How often a reader of our own slots (republishing) retries a slot a writer is inside. */
#define STATS_READ_TRIES 1000

/*
 * This layer's stats state. The segment is made on the first virtual socket, not at start-up,
 * so a process that routes nothing leaves no file behind.
 */
static struct {
	atomic_flag lock; /* making the segment */
	/* This process's segment, or NULL. Release/acquire: a thread that sees it sees it whole. */
	_Atomic(struct vi_stats_header *) segment;
	struct vi_stats_header *inherited; /* in a forked child: a private copy of the parent's */
	pid_t failed_pid;                  /* making the segment failed in this process */
	bool atfork_registered;
	void *snapshot; /* around a fork: the used part of the segment, taken in the parent */
	size_t snapshot_size;
} stats = { .lock = ATOMIC_FLAG_INIT };

/* ---- the segment ---- */

/* Copies text into a fixed field; `keep_end` keeps the end of a text that does not fit. */
static void stats_copy_text(char *dst, size_t size, const char *src, bool keep_end)
{
	if (src == NULL)
		src = "";
	size_t len = strlen(src);
	if (len >= size) {
		if (keep_end)
			src += len - (size - 1);
		len = size - 1;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int stats_segment_create(const char *dir, pid_t pid, const char *program, uint64_t start_time,
			 struct vi_stats_header **out)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/" VI_STATS_PREFIX "%d", dir, (int)pid) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(path, flags, 0600);
	/*
	 * The name holds our PID, so a file already there is a dead process's whose PID we got,
	 * or this process's own from before an exec. Either way it is ours to replace; O_EXCL
	 * and O_NOFOLLOW keep another user's planted file or link from being written through.
	 */
	if (fd < 0 && errno == EEXIST && unlink(path) == 0)
		fd = open(path, flags, 0600);
	if (fd < 0)
		return -errno;
	size_t size = vi_stats_segment_size(VI_STATS_SLOTS);
	int err = 0;
	void *map = MAP_FAILED;
	if (ftruncate(fd, (off_t)size) < 0)
		err = -errno;
	else if ((map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
		err = -errno;
	close(fd);
	if (err < 0) {
		unlink(path);
		return err;
	}
	struct vi_stats_header *h = map;
	h->version = VI_STATS_VERSION;
	h->header_size = sizeof(*h);
	h->slot_size = sizeof(struct vi_stats_slot);
	h->slot_count = VI_STATS_SLOTS;
	h->pid = (int32_t)pid;
	h->start_time = start_time;
	stats_copy_text(h->program, sizeof(h->program), program, false);
	/* Release pairs with the acquire in vi_stats_header_check: the magic comes last. */
	atomic_store_explicit(&h->magic, VI_STATS_MAGIC, memory_order_release);
	*out = h;
	return 0;
}

void stats_segment_unmap(struct vi_stats_header *h)
{
	munmap(h, vi_stats_segment_size(h->slot_count));
}

static bool stats_segment_holds(const struct vi_stats_header *h, const struct vi_stats_slot *slot)
{
	const struct vi_stats_slot *first = vi_stats_slots(h);
	return h != NULL && slot >= first && slot < first + h->slot_count;
}

/* ---- slots: a seqlock per slot for the identity, single atomics for the live fields ---- */

/*
 * Enters a slot's identity as its only writer (writers of one slot are rare: open, a
 * transport change, close; they wait for each other, the data path never does).
 */
static void stats_slot_write_begin(struct vi_stats_slot *slot)
{
	uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
	for (;;) {
		/* Acquire pairs with the release in stats_slot_write_end of the previous writer. */
		if ((seq & 1u) == 0 &&
		    atomic_compare_exchange_weak_explicit(&slot->seq, &seq, seq + 1,
							  memory_order_acquire, memory_order_relaxed))
			break;
		if (seq & 1u) {
			sched_yield();
			seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
		}
	}
	/*
	 * The odd seq before any field below: pairs with the reader's acquire fence
	 * (vi_stats_slot_read).
	 */
	atomic_thread_fence(memory_order_release);
}

static void stats_slot_write_end(struct vi_stats_slot *slot)
{
	uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
	/* Release pairs with the reader's first, acquiring, look at seq. */
	atomic_store_explicit(&slot->seq, seq + 1, memory_order_release);
}

static void stats_slot_fill(struct vi_stats_slot *slot, const struct stats_identity *id)
{
	slot->fd = id->fd;
	slot->kind = (uint32_t)id->kind;
	stats_copy_text(slot->transport, sizeof(slot->transport), id->transport, false);
	stats_copy_text(slot->local, sizeof(slot->local), id->local, false);
	stats_copy_text(slot->peer, sizeof(slot->peer), id->peer, false);
	stats_copy_text(slot->caller, sizeof(slot->caller), id->caller, false);
	stats_copy_text(slot->rule, sizeof(slot->rule), id->rule, true);
	stats_copy_text(slot->reason, sizeof(slot->reason), id->reason, false);
}

static uint64_t stats_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct vi_stats_slot *stats_slot_claim(struct vi_stats_header *h, const struct stats_identity *id,
				       uint32_t state, uint32_t watch,
				       const struct stats_counts *counts)
{
	struct vi_stats_slot *slots = vi_stats_slots(h);
	uint32_t n = h->slot_count;
	uint32_t start = atomic_load_explicit(&h->free_hint, memory_order_relaxed);
	if (start >= n)
		start = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = start + k < n ? start + k : start + k - n;
		uint32_t expected = 0;
		/* Acquire pairs with the release in stats_slot_release: the last owner is done with it. */
		if (atomic_load_explicit(&slots[i].claimed, memory_order_relaxed) != 0 ||
		    !atomic_compare_exchange_strong_explicit(&slots[i].claimed, &expected, 1,
							     memory_order_acquire, memory_order_relaxed))
			continue;
		if (i >= start) /* every slot in [start, i] was taken when looked at */
			atomic_compare_exchange_strong_explicit(&h->free_hint, &start, i + 1,
								memory_order_relaxed,
								memory_order_relaxed);
		uint32_t high = atomic_load_explicit(&h->slot_high, memory_order_relaxed);
		while (i + 1 > high &&
		       !atomic_compare_exchange_weak_explicit(&h->slot_high, &high, i + 1,
							      memory_order_relaxed, memory_order_relaxed))
			;
		struct vi_stats_slot *slot = &slots[i];
		stats_slot_write_begin(slot);
		stats_slot_fill(slot, id);
		slot->opened_ms = stats_now_ms();
		const struct stats_counts zero = { 0 };
		if (counts == NULL)
			counts = &zero;
		atomic_store_explicit(&slot->bytes_in, counts->bytes_in, memory_order_relaxed);
		atomic_store_explicit(&slot->bytes_out, counts->bytes_out, memory_order_relaxed);
		atomic_store_explicit(&slot->handoffs, counts->handoffs, memory_order_relaxed);
		atomic_store_explicit(&slot->reconnects, counts->reconnects, memory_order_relaxed);
		atomic_store_explicit(&slot->state, state, memory_order_relaxed);
		atomic_store_explicit(&slot->watch, watch, memory_order_relaxed);
		stats_slot_write_end(slot);
		atomic_fetch_add_explicit(&h->published, 1, memory_order_relaxed);
		return slot;
	}
	atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
	return NULL;
}

void stats_slot_update(struct vi_stats_slot *slot, const struct stats_identity *id)
{
	stats_slot_write_begin(slot);
	stats_slot_fill(slot, id);
	stats_slot_write_end(slot);
}

void stats_slot_release(struct vi_stats_header *h, struct vi_stats_slot *slot)
{
	stats_slot_write_begin(slot);
	slot->kind = VI_STATS_FREE;
	atomic_store_explicit(&slot->state, 0, memory_order_relaxed);
	stats_slot_write_end(slot);
	/* Release pairs with the acquire in stats_slot_claim. */
	atomic_store_explicit(&slot->claimed, 0, memory_order_release);
	if (h == NULL)
		return;
	uint32_t index = (uint32_t)(slot - vi_stats_slots(h));
	uint32_t hint = atomic_load_explicit(&h->free_hint, memory_order_relaxed);
	while (index < hint &&
	       !atomic_compare_exchange_weak_explicit(&h->free_hint, &hint, index,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* ---- this process's segment ---- */

static void stats_lock(void)
{
	/* Acquire pairs with the release in stats_unlock. */
	while (atomic_flag_test_and_set_explicit(&stats.lock, memory_order_acquire))
		sched_yield();
}

static void stats_unlock(void)
{
	atomic_flag_clear_explicit(&stats.lock, memory_order_release);
}

/* The program's name as run (AT_EXECFN keeps a symlink's name), as the audit layer names it. */
static void stats_program_name(char *out, size_t size)
{
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	char exe[PATH_MAX];
	if (execfn == NULL || execfn[0] == '\0') {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = '\0';
		execfn = exe;
	}
	const char *base = strrchr(execfn, '/');
	stats_copy_text(out, size, base != NULL ? base + 1 : execfn, false);
}

/* Field 22 of /proc/self/stat, or 0 when it cannot be read (readers then skip that check). */
static uint64_t stats_start_time(void)
{
	char text[1024];
	uint64_t start = 0;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	if (vi_stats_parse_start_time(text, &start) < 0)
		return 0;
	return start;
}

static void stats_before_fork(void);
static void stats_after_fork_parent(void);
static void stats_after_fork_child(void);

static void stats_forget_inherited_slot(int fd, struct vsock *vs)
{
	atomic_store_explicit(&vs->stat, NULL, memory_order_relaxed);
}

/* A slot the child inherited from its parent's segment moves to the child's own. */
static void stats_adopt_inherited(int fd, struct vsock *vs)
{
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_relaxed);
	struct vi_stats_slot *old = atomic_load_explicit(&vs->stat, memory_order_acquire);
	if (old == NULL || !stats_segment_holds(stats.inherited, old))
		return;
	struct vi_stats_slot *fresh = NULL;
	struct vi_stats_snapshot snap;
	if (vi_stats_slot_read(old, &snap, STATS_READ_TRIES) == 1) {
		struct stats_identity id = {
			.fd = snap.fd, .kind = (enum vi_stats_kind)snap.kind,
			.transport = snap.transport, .local = snap.local, .peer = snap.peer,
			.caller = snap.caller, .rule = snap.rule, .reason = snap.reason,
		};
		struct stats_counts counts = { snap.bytes_in, snap.bytes_out, snap.handoffs,
					       snap.reconnects };
		/* Recheck on the next byte: the parent may not have noted its last change. */
		uint32_t watch = vs->kind == VSOCK_STREAM ? STATS_WATCH_RECHECK : 0;
		fresh = stats_slot_claim(h, &id, snap.state, watch, &counts);
	}
	/* A close in another thread may have unpublished vs meanwhile: then the new slot goes too. */
	if (!atomic_compare_exchange_strong(&vs->stat, &old, fresh) && fresh != NULL)
		stats_slot_release(h, fresh);
}

/* This process's segment, made the first time. NULL when it cannot be made. */
static struct vi_stats_header *stats_segment(void)
{
	/* Acquire pairs with the release below. */
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_acquire);
	if (h != NULL)
		return h;
	stats_lock();
	h = atomic_load_explicit(&stats.segment, memory_order_relaxed);
	pid_t pid = getpid();
	if (h == NULL && stats.failed_pid != pid) {
		char program[VI_STATS_PROGRAM_MAX];
		stats_program_name(program, sizeof(program));
		if (stats_segment_create(VI_STATS_DIR, pid, program, stats_start_time(), &h) < 0) {
			stats.failed_pid = pid;
			h = NULL;
		} else {
			atomic_store_explicit(&stats.segment, h, memory_order_release);
			if (!stats.atfork_registered && vi_libc.register_atfork != NULL) {
				/* The program's libc runs it in the child of every fork, daemon() too. */
				vi_libc.register_atfork(stats_before_fork, stats_after_fork_parent,
							stats_after_fork_child, NULL);
				stats.atfork_registered = true;
			}
			if (stats.inherited != NULL)
				vsock_for_each(stats_adopt_inherited);
		}
	}
	stats_unlock();
	return h;
}

/*
 * In the child of a fork (one thread, before fork returns): the parent's segment is still
 * mapped shared here, and the child must never write into it. It is replaced, at the same
 * address so the inherited virtual sockets' slot pointers stay valid, by a private copy;
 * every slot in use is marked to be rechecked, so the child's first byte on an inherited
 * connection -- or its first new socket -- makes the child's own segment and moves the
 * inherited slots there. A child that execs at once costs one copy of the used part.
 */
/*
 * In the parent before fork: the copy the child will start from is taken here, not in the
 * child, because the parent may go on (close its copy of a connection, releasing the slot)
 * before the child runs at all.
 */
static void stats_before_fork(void)
{
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_relaxed);
	stats.snapshot = NULL;
	if (h == NULL)
		return;
	uint32_t high = atomic_load_explicit(&h->slot_high, memory_order_relaxed);
	size_t used = vi_stats_segment_size(high <= h->slot_count ? high : h->slot_count);
	void *copy = mmap(NULL, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED)
		return;
	memcpy(copy, h, used);
	stats.snapshot = copy;
	stats.snapshot_size = used;
}

static void stats_after_fork_parent(void)
{
	if (stats.snapshot != NULL)
		munmap(stats.snapshot, stats.snapshot_size);
	stats.snapshot = NULL;
}

static void stats_after_fork_child(void)
{
	atomic_flag_clear(&stats.lock); /* a thread of the parent may have held it */
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_relaxed);
	void *copy = stats.snapshot;
	size_t used = stats.snapshot_size;
	stats.snapshot = NULL;
	if (h == NULL) {
		if (copy != NULL)
			munmap(copy, used);
		return;
	}
	atomic_store_explicit(&stats.segment, NULL, memory_order_relaxed);
	size_t size = vi_stats_segment_size(h->slot_count);
	if (mmap(h, size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
		    MAP_FAILED ||
	    copy == NULL) {
		/* Still the parent's memory, or no copy of it: forget every inherited slot. */
		stats.inherited = NULL;
		vsock_for_each(stats_forget_inherited_slot);
	} else {
		stats.inherited = h;
		memcpy(h, copy, used);
		uint32_t high = atomic_load_explicit(&h->slot_high, memory_order_relaxed);
		struct vi_stats_slot *slots = vi_stats_slots(h);
		for (uint32_t i = 0; i < high && i < h->slot_count; i++)
			atomic_store_explicit(&slots[i].watch, STATS_WATCH_RECHECK,
					      memory_order_relaxed);
	}
	if (copy != NULL)
		munmap(copy, used);
}

/*
 * A process that exits normally removes its own segment (ld.so runs the audit module's
 * destructors at exit too). One killed by a signal, or ended by _exit, leaves it to the
 * readers' stale check.
 */
__attribute__((destructor)) static void stats_remove_at_exit(void)
{
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_acquire);
	if (h == NULL || h->pid != (int32_t)getpid())
		return;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/" VI_STATS_PREFIX "%d", VI_STATS_DIR, (int)h->pid);
	unlink(path);
}

/* ---- virtual sockets ---- */

static struct vi_stats_header *stats_header_of(const struct vi_stats_slot *slot)
{
	struct vi_stats_header *h = atomic_load_explicit(&stats.segment, memory_order_acquire);
	if (stats_segment_holds(h, slot))
		return h;
	return stats_segment_holds(stats.inherited, slot) ? stats.inherited : NULL;
}

static void stats_format_name(int fd, bool peer, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int saved = vi_libc_errno();
	int r = peer ? vi_libc.getpeername(fd, (struct sockaddr *)&ss, &len)
		     : vi_libc.getsockname(fd, (struct sockaddr *)&ss, &len);
	if (r == 0)
		sockaddr_format((struct sockaddr *)&ss, len, out, size);
	else
		snprintf(out, size, "?");
	vi_libc_set_errno(saved);
}

void stats_publish(struct vsock *vs, int fd, const char *transport, const char *reason)
{
	struct vi_stats_header *h = stats_segment();
	if (h == NULL)
		return;
	char local[SOCKADDR_TEXT_MAX], peer[SOCKADDR_TEXT_MAX] = "", rule[VI_STATS_RULE_MAX] = "";
	stats_format_name(fd, false, local, sizeof(local));
	uint32_t state = 0, watch = 0;
	if (vs->kind == VSOCK_LISTENER) {
		state = VI_STATS_LISTENING;
	} else {
		stats_format_name(fd, true, peer, sizeof(peer));
		watch = stats_watch_value(&vs->conn);
		if (strcmp(peer, "?") == 0) { /* a non-blocking connect still in progress */
			state = VI_STATS_CONNECTING;
			watch = STATS_WATCH_RECHECK;
		}
	}
	const struct vi_route *route = vs->choice.route;
	if (route != NULL && route->pos.file != NULL) {
		/* The end of a long path is what tells rules apart. */
		char full[PATH_MAX + 16];
		snprintf(full, sizeof(full), "%s:%u", route->pos.file, route->pos.line);
		stats_copy_text(rule, sizeof(rule), full, true);
	}
	struct stats_identity id = {
		.fd = fd,
		.kind = vs->kind == VSOCK_LISTENER ? VI_STATS_LISTENER : VI_STATS_STREAM,
		.transport = transport,
		.local = local,
		.peer = peer,
		.caller = vs->choice.caller,
		.rule = rule,
		.reason = reason,
	};
	struct vi_stats_slot *slot = stats_slot_claim(h, &id, state, watch, NULL);
	/* Before vsock_install publishes vs: no other thread can see vs->stat yet. */
	atomic_store_explicit(&vs->stat, slot, memory_order_relaxed);
}

void stats_unpublish(struct vsock *vs)
{
	struct vi_stats_slot *slot = atomic_exchange(&vs->stat, NULL);
	if (slot != NULL)
		stats_slot_release(stats_header_of(slot), slot);
}

void stats_note_shutdown(struct vsock *vs, int how, long r)
{
	struct vi_stats_slot *slot = atomic_load_explicit(&vs->stat, memory_order_relaxed);
	if (slot == NULL || r < 0)
		return;
	uint32_t bits = how == SHUT_RD ? VI_STATS_SHUT_RD
			: how == SHUT_WR ? VI_STATS_SHUT_WR
					 : VI_STATS_SHUT_RD | VI_STATS_SHUT_WR;
	atomic_fetch_or_explicit(&slot->state, bits, memory_order_relaxed);
}

void stats_note_end(struct vsock *vs, long r, bool in)
{
	struct vi_stats_slot *slot = atomic_load_explicit(&vs->stat, memory_order_relaxed);
	if (slot == NULL)
		return;
	uint32_t state = atomic_load_explicit(&slot->state, memory_order_relaxed);
	uint32_t bits = 0;
	if (r == 0 && in)
		bits = VI_STATS_PEER_EOF;
	else if (r == -ECONNRESET || (r == -EPIPE && (state & VI_STATS_SHUT_WR) == 0))
		bits = VI_STATS_RESET; /* EPIPE after our own shutdown is not the peer's doing */
	if (bits != 0)
		atomic_fetch_or_explicit(&slot->state, bits, memory_order_relaxed);
}

/*
 * A forked child taking a connection over makes its own segment while the handoff waits
 * for the peer, not after it: the first byte then does not wait for the segment too.
 */
void stats_child_segment(void)
{
	if (stats.inherited != NULL && atomic_load_explicit(&stats.segment, memory_order_acquire) == NULL)
		stats_segment();
}

void stats_note_change(struct vsock *vs, int fd)
{
	struct vi_stats_slot *slot = atomic_load_explicit(&vs->stat, memory_order_acquire);
	if (slot == NULL)
		return;
	uint32_t want = stats_watch_value(&vs->conn);
	if (stats.inherited != NULL && stats_segment_holds(stats.inherited, slot)) {
		/* A forked child's first byte on its parent's connection: make its own segment. */
		stats_segment();
		struct vi_stats_slot *moved = atomic_load_explicit(&vs->stat, memory_order_acquire);
		if (moved == NULL || moved == slot) {
			/* No segment of its own: stop asking on every byte. */
			atomic_store_explicit(&slot->watch, want, memory_order_relaxed);
			return;
		}
		slot = moved;
	}
	uint32_t seen = atomic_load_explicit(&slot->watch, memory_order_relaxed);
	/* One thread rewrites the identity; the others go on counting. */
	if (seen == want || !atomic_compare_exchange_strong_explicit(&slot->watch, &seen, want,
								      memory_order_relaxed,
								      memory_order_relaxed))
		return;
	atomic_store_explicit(&slot->handoffs, vs->conn.handoffs, memory_order_relaxed);
	uint32_t state = atomic_fetch_and_explicit(&slot->state, ~VI_STATS_CONNECTING,
						   memory_order_relaxed);
	struct vi_stats_snapshot snap;
	if (vi_stats_slot_read(slot, &snap, STATS_READ_TRIES) != 1)
		return;
	struct stats_identity id = {
		.fd = snap.fd, .kind = (enum vi_stats_kind)snap.kind, .transport = snap.transport,
		.local = snap.local, .peer = snap.peer, .caller = snap.caller, .rule = snap.rule,
		.reason = snap.reason,
	};
	const char *name = vs->conn.ops != NULL ? vs->conn.ops->name : NULL;
	if (name != NULL && strcmp(name, snap.transport) != 0) {
		id.transport = name;
		if (snap.reason[0] == '\0')
			id.reason = "the listener did not accept the shm request";
	}
	char local[SOCKADDR_TEXT_MAX], peer[SOCKADDR_TEXT_MAX];
	if (state & VI_STATS_CONNECTING) {
		stats_format_name(fd, false, local, sizeof(local));
		stats_format_name(fd, true, peer, sizeof(peer));
		id.local = local;
		id.peer = peer;
	}
	stats_slot_update(slot, &id);
}
