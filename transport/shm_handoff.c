/* The fork handoff of a same-host connection: records, the new owner's side of the protocol, and the peer's answer (see shm_handoff.h). */
#include "shm_handoff.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "door.h"
#include "libc.h"
#include "log.h"
#include "memfd_seal.h"

/* How long the peer waits for the ATTACH after it saw the intermit word. */
#define HANDOFF_ATTACH_WAIT_MS 1000
/* How often a new owner waiting for the peer looks at whether the peer is still there. */
#define HANDOFF_POLL_MS 100
/* How long a new owner that could take the segment in use waits for the peer to pause. */
#define HANDOFF_AWAY_MS 5
#define HANDOFF_TEXT(x) #x
#define HANDOFF_NUMBER_TEXT(x) HANDOFF_TEXT(x)
/* A resumed call whose connection another process took sleeps this long between looks. */
#define HANDOFF_DISPOSSESSED_US 10000

void (*vi_transport_handoff_idle)(void);

/* ---- records: shared anonymous memory, inherited by every later child ---- */

#define HANDOFF_CHUNK_RECORDS 256

struct handoff_chunk {
	struct handoff_chunk *next; /* this process's list; the memory itself is shared */
	struct shm_handoff_record records[HANDOFF_CHUNK_RECORDS];
};

static struct {
	atomic_flag lock;
	struct handoff_chunk *chunks;
	_Atomic int pid; /* getpid(), reset in each child */
} handoff_pool = { .lock = ATOMIC_FLAG_INIT };

static int handoff_pid(void)
{
	int pid = atomic_load_explicit(&handoff_pool.pid, memory_order_relaxed);
	if (pid == 0) {
		pid = getpid();
		atomic_store_explicit(&handoff_pool.pid, pid, memory_order_relaxed);
	}
	return pid;
}

/* The lock value of the calling thread. */
static uint64_t handoff_self(void)
{
	static __thread uint64_t cached;
	static __thread int cached_pid;
	int pid = handoff_pid();
	if (cached_pid != pid) {
		cached = (uint64_t)(uint32_t)pid << 32 | (uint32_t)syscall(SYS_gettid);
		cached_pid = pid;
	}
	return cached;
}

/*
 * Whether a task runs: /proc/PID[/task/TID]/stat exists and its state is not Z (a zombie:
 * killed, not yet reaped -- maybe by the very process asking, which must not wait for it)
 * or X. Without /proc, kill(2) answers, zombies included.
 */
static bool handoff_task_alive(int pid, int tid)
{
	char path[64], buf[256];
	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return false;
		return tid > 0 ? syscall(SYS_tgkill, pid, tid, 0) == 0 || errno == EPERM
			       : kill(pid, 0) == 0 || errno == EPERM;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "PID (COMM) S ...": the state follows the last ')' (COMM may hold one). */
	const char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static bool handoff_pid_alive(int pid)
{
	return pid > 0 && handoff_task_alive(pid, 0);
}

/*
 * Whether process `pid` still holds the socket as its `fd`: the same open file as ours
 * (kcmp), so that a holder that closed it, or exec'd with it close-on-exec, does not keep
 * the session from ending. When kcmp cannot tell (not permitted), a live process counts.
 */
static bool handoff_still_holds(int pid, int fd)
{
	if (!handoff_pid_alive(pid))
		return false;
	long r = syscall(SYS_kcmp, handoff_pid(), pid, KCMP_FILE, fd, fd);
	return r == 0 || (r < 0 && errno != EBADF);
}

static bool handoff_thread_alive(uint64_t who)
{
	return handoff_task_alive((int)(who >> 32), (int)(uint32_t)who);
}

static struct shm_handoff_record *handoff_record_alloc(void)
{
	shm_lock(&handoff_pool.lock);
	for (struct handoff_chunk *c = handoff_pool.chunks; c != NULL; c = c->next)
		for (size_t i = 0; i < HANDOFF_CHUNK_RECORDS; i++) {
			uint32_t free_slot = 0;
			/* Another process sharing the chunk may allocate at once: claim by CAS. */
			if (atomic_compare_exchange_strong(&c->records[i].in_use, &free_slot, 1)) {
				shm_unlock(&handoff_pool.lock);
				return &c->records[i];
			}
		}
	struct handoff_chunk *c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) {
		shm_unlock(&handoff_pool.lock);
		return NULL;
	}
	c->next = handoff_pool.chunks;
	handoff_pool.chunks = c;
	atomic_store(&c->records[0].in_use, 1);
	shm_unlock(&handoff_pool.lock);
	return &c->records[0];
}

static void handoff_holder_add(struct shm_handoff_record *r, int pid)
{
	for (size_t i = 0; i < SHM_HANDOFF_HOLDERS; i++)
		if (atomic_load(&r->holders[i]) == pid)
			return;
	for (size_t i = 0; i < SHM_HANDOFF_HOLDERS; i++) {
		int32_t slot = atomic_load(&r->holders[i]);
		/* A free slot, or one of a process that died without closing. */
		if ((slot == 0 || !handoff_pid_alive(slot)) &&
		    atomic_compare_exchange_strong(&r->holders[i], &slot, pid))
			return;
	}
}

static void handoff_lock(struct shm_handoff_record *r)
{
	uint64_t me = handoff_self();
	for (unsigned turn = 0;; turn++) {
		uint64_t cur = 0;
		if (atomic_compare_exchange_weak_explicit(&r->lock, &cur, me, memory_order_acquire,
							  memory_order_relaxed))
			return;
		/* A holder killed inside a data call leaves the lock taken: take it over. */
		if (cur != 0 && (turn & 255) == 255 && !handoff_thread_alive(cur) &&
		    atomic_compare_exchange_strong(&r->lock, &cur, me))
			return;
		if (turn < 64)
			continue;
		sched_yield();
	}
}

static void handoff_unlock(struct shm_handoff_record *r)
{
	atomic_store_explicit(&r->lock, 0, memory_order_release);
}

int shm_handoff_prepare_fork(struct shm_endpoint *e, int fd)
{
	if (e->state != SHM_ACTIVE || e->session == NULL || e->chan_fd < 0)
		return -ENOTSUP;
	e->fork_fd = fd;
	if (e->record == NULL) {
		struct shm_handoff_record *r = handoff_record_alloc();
		if (r == NULL)
			return -ENOMEM;
		atomic_store(&r->owner, handoff_pid());
		atomic_store(&r->lock, 0);
		atomic_store(&r->unborn, 0);
		for (size_t i = 0; i < SHM_HANDOFF_HOLDERS; i++)
			atomic_store(&r->holders[i], 0);
		handoff_holder_add(r, handoff_pid());
		e->record = r;
	}
	atomic_fetch_add(&e->record->unborn, 1);
	atomic_store_explicit(&e->session->sides[e->side].forked, 1, memory_order_release);
	return 0;
}

void shm_handoff_after_fork_child(struct shm_endpoint *e)
{
	atomic_store(&handoff_pool.pid, getpid());
	if (e->record != NULL) {
		handoff_holder_add(e->record, handoff_pid());
		atomic_fetch_sub(&e->record->unborn, 1);
	}
}

bool shm_handoff_release(struct shm_endpoint *e)
{
	struct shm_handoff_record *r = e->record;
	int me = handoff_pid();
	bool others = false;
	/*
	 * A parent that closes right after fork may run before its child has added itself:
	 * a child not yet counted still holds the socket. (A fork that failed leaves the count
	 * up: then the last close does not end the session, and the peer learns of the end
	 * from the kernel socket's FIN, after the bytes already sent.)
	 */
	bool unborn = atomic_load(&r->unborn) != 0;
	handoff_lock(r);
	for (size_t i = 0; i < SHM_HANDOFF_HOLDERS; i++) {
		int32_t pid = atomic_load(&r->holders[i]);
		if (pid == me)
			atomic_store(&r->holders[i], 0);
		else if (pid != 0 && handoff_still_holds(pid, e->fork_fd))
			others = true;
	}
	others = others || unborn;
	if (atomic_load(&r->owner) == me)
		atomic_store(&r->owner, 0); /* T1: the next holder's read or write moves it */
	if (!others)
		atomic_store(&r->in_use, 0);
	handoff_unlock(r);
	return others;
}

/* ---- helpers ---- */

static void handoff_eventfd_write(int fd)
{
	uint64_t one = 1;
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, so the reader is awake anyway. */
	}
}

/*
 * Unmaps a segment nobody uses any more; with other threads about, keeps it until close.
 * The first segment stays mapped for its control page, the session page: the peer, which
 * answered the handoff, frees the ring pages it had used (`used` bytes of each ring, the
 * most either ever held), so that an idle connection's retired rings cost no memory.
 */
static void handoff_retire(struct shm_endpoint *e, void *base, size_t size, bool free_pages,
			   const size_t used[2])
{
	if (base == NULL)
		return;
	if (base == e->session_base) {
		size_t cap = (size_t)e->tx.capacity;
		for (int i = 0; free_pages && i < 2; i++) {
			size_t n = (used[i] + 4095) & ~(size_t)4095;
			if (n > 0)
				madvise((char *)base + SHM_SEGMENT_CONTROL_SIZE + (size_t)i * cap,
					n < cap ? n : cap, MADV_REMOVE);
		}
		return;
	}
	if (vi_libc_single_threaded()) {
		munmap(base, size);
		return;
	}
	/* A thread of this process may be asleep on the old rings' futexes: keep one back. */
	if (e->retired_base != NULL)
		munmap(e->retired_base, e->retired_size);
	e->retired_base = base;
	e->retired_size = size;
}

/*
 * Copies the bytes [from, to) of the ring whose data is at `data` into the producer view
 * `dst`, leaving the old ring as it is: if the handoff never completes (we die in it), the
 * new owner can still take the old ring over with every byte in it. Returns the bytes
 * copied or -EPROTO (counters out of range).
 */
static long long handoff_copy_ring(const unsigned char *data, uint64_t capacity, uint64_t from,
				   uint64_t to, struct shm_ring *dst)
{
	if (to - from > capacity)
		return -EPROTO;
	uint64_t mask = capacity - 1;
	for (uint64_t pos = from; pos != to;) {
		uint64_t off = pos & mask;
		uint64_t n = to - pos;
		if (n > capacity - off)
			n = capacity - off;
		if (shm_ring_write(dst, data + off, (size_t)n) != (ssize_t)n)
			return -EPROTO; /* cannot happen: the new ring is as large and was empty */
		pos += n;
	}
	return (long long)(to - from);
}

/* A second view of one ring of the segment at `base`, in `role`. Returns 0 or -errno. */
static int handoff_view(void *base, int ring, size_t capacity, enum shm_ring_role role,
			struct shm_ring *out)
{
	struct shm_segment_control *control = base;
	unsigned char *data = (unsigned char *)base + SHM_SEGMENT_CONTROL_SIZE;
	return shm_ring_init(out, &control->rings[ring], data + (size_t)ring * capacity, capacity,
			     role, &control->reset, NULL);
}

/* ---- the peer: steps 2 to 5 ---- */

/* Receives the ATTACH of epoch `k` from the session channel. Returns the memfd or -errno. */
static int handoff_receive_attach(struct shm_endpoint *e, uint32_t k, struct door_attach *out)
{
	long long deadline = shm_now_ns() + HANDOFF_ATTACH_WAIT_MS * 1000000LL;
	for (;;) {
		struct door_message msg;
		int fds[DOOR_MESSAGE_FDS_MAX];
		size_t nfds = 0;
		int r = door_recv(e->chan_fd, &msg, fds, DOOR_MESSAGE_FDS_MAX, &nfds);
		if (r == 0 && msg.type == DOOR_MESSAGE_ATTACH && msg.attach.epoch == k) {
			*out = msg.attach;
			return fds[0];
		}
		if (r == 0) {
			/* An older ATTACH whose sender died before the peer saw it: drop it. */
			for (size_t i = 0; i < nfds; i++)
				close(fds[i]);
			if (msg.type == DOOR_MESSAGE_ATTACH && msg.attach.epoch < k)
				continue;
			return -EPROTO;
		}
		if (r != -EAGAIN)
			return r;
		long long left_ms = (deadline - shm_now_ns()) / 1000000LL;
		if (left_ms <= 0)
			return -ETIMEDOUT;
		door_wait(e->chan_fd, POLLIN, (int)left_ms);
	}
}

/*
 * Copies both directions' undelivered bytes from this side's rings into the fresh segment
 * at `base`, and the halves already closed. Returns 0 or -errno; `in` and `out` say how many.
 */
static int handoff_copy(struct shm_endpoint *e, void *base, long long *in, long long *out)
{
	size_t cap = (size_t)e->tx.capacity;
	int mine = e->side == SHM_SEGMENT_CONNECTOR ? 0 : 1, theirs = 1 - mine;
	struct shm_ring new_out, new_in;
	int r;
	if ((r = handoff_view(base, mine, cap, SHM_RING_PRODUCER, &new_out)) < 0 ||
	    (r = handoff_view(base, theirs, cap, SHM_RING_PRODUCER, &new_in)) < 0)
		return r;
	struct shm_segment_control *old = e->base;
	const unsigned char *data = (const unsigned char *)e->base + SHM_SEGMENT_CONTROL_SIZE;
	/* Ours the other side has not read: from its read count to our write count. */
	uint64_t their_tail = atomic_load_explicit(&old->rings[mine].tail, memory_order_acquire);
	long long n_out = handoff_copy_ring(data + (size_t)mine * cap, cap, their_tail, e->tx.head,
					    &new_out);
	/* Theirs we have not read: from our read count to their write count. */
	uint64_t their_head = atomic_load_explicit(&old->rings[theirs].head, memory_order_acquire);
	long long n_in = handoff_copy_ring(data + (size_t)theirs * cap, cap, e->rx.tail, their_head,
					   &new_in);
	if (n_out < 0 || n_in < 0)
		return -EPROTO;
	if (shm_ring_peer_closed(&e->rx))
		shm_ring_peer_aborted(&e->rx) ? shm_ring_abort(&new_in) : shm_ring_close(&new_in);
	struct shm_segment_control *from = e->base, *to = base;
	atomic_store(&to->reset, atomic_load(&from->reset));
	atomic_store(&to->rings[mine].reader_closed, atomic_load(&from->rings[mine].reader_closed) != 0);
	*in = n_in;
	*out = n_out;
	return 0;
}

bool shm_handoff_pending(struct shm_endpoint *e, uint32_t k)
{
	struct shm_session_side *side = &e->session->sides[1 - e->side];
	uint32_t paused = atomic_load_explicit(&side->paused, memory_order_acquire);
	if (atomic_load_explicit(&side->switched, memory_order_acquire) == k ||
	    atomic_load_explicit(&side->refused, memory_order_acquire) == k ||
	    paused == (k | SHM_SESSION_CANCELLED) || paused == k) {
		/* Answered (here or by another process of this side), called off, or being answered. */
		if (paused != k && k > e->answered) {
			e->answered = k;
			shm_handoff_watch(e); /* ring waits stop waking for it */
		}
		return false;
	}
	return true;
}

void shm_handoff_answer(struct vi_conn *conn, int fd)
{
	struct shm_endpoint *e = &conn->shm;
	if (!shm_handoff_asked(e) || e->state != SHM_ACTIVE)
		return;
	struct shm_session *s = e->session;
	int other = 1 - e->side;
	/* settle_lock is free once the endpoint is active: one thread answers. */
	shm_lock(&e->settle_lock);
	uint32_t k = atomic_load_explicit(&s->sides[other].intermit, memory_order_acquire);
	if (k <= e->answered) {
		shm_unlock(&e->settle_lock);
		return;
	}
	long long t0 = shm_now_ns();
	/* Step 2: pause. No thread of ours reads or writes the old rings from here on. */
	shm_lock(&e->tx_lock);
	shm_lock(&e->rx_lock);
	atomic_store_explicit(&s->sides[other].marker, e->tx.head, memory_order_relaxed);
	uint32_t before = atomic_load_explicit(&s->sides[other].paused, memory_order_acquire);
	if (before == (k | SHM_SESSION_CANCELLED) ||
	    !atomic_compare_exchange_strong(&s->sides[other].paused, &before, k)) {
		/* Called off: the new owner took the rings as they are. Its ATTACH is dropped later. */
		e->answered = k;
		shm_handoff_watch(e);
		shm_unlock(&e->rx_lock);
		shm_unlock(&e->tx_lock);
		shm_unlock(&e->settle_lock);
		return;
	}

	struct door_attach attach;
	void *base = MAP_FAILED;
	const char *why = NULL;
	int err = 0;
	ssize_t size = shm_segment_size((size_t)e->tx.capacity);
	int memfd = handoff_receive_attach(e, k, &attach);
	if (memfd < 0) {
		err = memfd;
		why = "no ATTACH on the session channel";
	} else if (memcmp(attach.token, e->request.token, sizeof(attach.token)) != 0) {
		err = -EACCES;
		why = "ATTACH with a wrong session token";
	} else if (attach.ring_size != e->tx.capacity || size < 0 ||
		   (err = memfd_seal_check(memfd, (size_t)size)) < 0) {
		err = err < 0 ? err : -EPROTO;
		why = "ATTACH with a bad segment";
	} else if ((base = memfd_seal_map(memfd, (size_t)size, &err)) == MAP_FAILED) {
		why = "cannot map the new segment";
	}
	struct shm_ring tx, rx;
	long long in = 0, out = 0;
	if (why == NULL && (err = handoff_copy(e, base, &in, &out)) < 0)
		why = "the new segment is not consistent";
	/* Step 4: attach, now that the old bytes are in place. */
	if (why == NULL && (err = shm_segment_attach(base, (size_t)size, e->side, &tx, &rx)) < 0)
		why = "the new segment is not consistent";
	if (why != NULL) {
		if (memfd >= 0)
			close(memfd);
		if (base != MAP_FAILED)
			munmap(base, (size_t)size);
		/* A lying or missing ATTACH: stay on the old rings and say no. */
		atomic_store_explicit(&s->sides[other].refused, k, memory_order_release);
		futex_sem_wake(&s->sides[other].switched);
		handoff_eventfd_write(e->peer_wake_fd);
		e->answered = k; /* do not wait for this epoch again */
		shm_handoff_watch(e);
		shm_unlock(&e->rx_lock);
		shm_unlock(&e->tx_lock);
		shm_unlock(&e->settle_lock);
		if (vi_log_enabled(VI_LOG_CONNS))
			vi_log_line("conns: fd=%d handoff epoch=%u refused: %s (%s)", fd, k, why,
				    strerror(-err));
		return;
	}
	bool tx_closed = e->tx.closed, rx_closed = e->rx.closed;
	int mine = e->side == SHM_SEGMENT_CONNECTOR ? 0 : 1;
	size_t used[2];
	used[mine] = e->tx.head < e->tx.capacity ? (size_t)e->tx.head : (size_t)e->tx.capacity;
	used[1 - mine] = e->rx.tail < e->rx.capacity ? (size_t)e->rx.tail : (size_t)e->rx.capacity;
	void *old = e->base;
	size_t old_size = e->size;
	tx.wake_fd = rx.wake_fd = e->peer_wake_fd;
	e->tx = tx;
	e->rx = rx;
	if (tx_closed)
		shm_ring_close(&e->tx);
	if (rx_closed)
		shm_ring_close(&e->rx);
	e->base = base;
	e->size = (size_t)size;
	e->epoch = e->answered = k;
	if (e->seg_fd >= 0)
		close(e->seg_fd);
	e->seg_fd = memfd; /* for shm_handoff_parting */
	shm_handoff_watch(e);
	/* Step 5: report the switch. */
	atomic_store_explicit(&s->epoch, k, memory_order_release);
	atomic_store_explicit(&s->sides[other].switched, k, memory_order_release);
	futex_sem_wake(&s->sides[other].switched);
	handoff_eventfd_write(e->peer_wake_fd);
	handoff_retire(e, old, old_size, true, used);
	shm_unlock(&e->rx_lock);
	shm_unlock(&e->tx_lock);
	shm_unlock(&e->settle_lock);
	if (vi_log_enabled(VI_LOG_CONNS))
		vi_log_line("conns: fd=%d peer handed over: epoch=%u in=%lld out=%lld us=%lld", fd, k,
			    in, out, (shm_now_ns() - t0) / 1000);
}

/* Keeps the memfd of the segment we moved to, and tells the other holders where it is. */
static void handoff_keep_segment(struct shm_endpoint *e, int memfd)
{
	struct stat st;
	if (e->seg_fd >= 0)
		close(e->seg_fd);
	e->seg_fd = memfd;
	if (memfd < 0 || fstat(memfd, &st) < 0)
		return;
	atomic_store(&e->record->seg_ino, (uint64_t)st.st_ino);
	atomic_store(&e->record->seg_fd, memfd);
	atomic_store(&e->record->seg_pid, handoff_pid());
}

/*
 * Maps MEMFD, a segment of the session from another holder or the peer (checked as one
 * from the door is: seals and size), in place of ours, as the segment in use CURRENT, and
 * keeps the memfd for the other holders. Takes MEMFD. Returns 0, -EPROTO, or -EAGAIN when
 * the session moved on meanwhile.
 */
static int handoff_adopt_segment(struct shm_endpoint *e, int memfd, uint32_t current)
{
	ssize_t size = shm_segment_size((size_t)e->tx.capacity);
	int err = 0;
	void *base = MAP_FAILED;
	if (size < 0 || memfd_seal_check(memfd, (size_t)size) < 0 ||
	    (base = memfd_seal_map(memfd, (size_t)size, &err)) == MAP_FAILED) {
		close(memfd);
		return -EPROTO;
	}
	if (atomic_load(&e->session->epoch) != current) {
		munmap(base, (size_t)size);
		close(memfd);
		return -EAGAIN;
	}
	handoff_retire(e, e->base, e->size, false, NULL);
	e->base = base;
	e->size = (size_t)size;
	e->epoch = current;
	handoff_keep_segment(e, memfd);
	return 0;
}

/* ---- the end of the peer ---- */

void shm_handoff_parting(struct shm_endpoint *e)
{
	if (e->session == NULL || e->seg_fd < 0 || e->chan_fd < 0 || e->epoch == 0 ||
	    !atomic_load(&e->session->sides[1 - e->side].forked))
		return;
	struct door_message msg = { .type = DOOR_MESSAGE_ATTACH };
	memcpy(msg.attach.token, e->request.token, sizeof(msg.attach.token));
	msg.attach.epoch = e->epoch;
	msg.attach.ring_size = (uint32_t)e->tx.capacity;
	door_send(e->chan_fd, &msg, &e->seg_fd, 1); /* best effort: a full channel drops it */
}

/*
 * A new owner whose peer is gone, and who does not map the segment in use: the peer may
 * have left it on the session channel (shm_handoff_parting). Maps it in place of ours.
 * Returns 0 or -errno.
 */
static int handoff_take_parting(struct shm_endpoint *e)
{
	uint32_t current = atomic_load(&e->session->epoch);
	for (;;) {
		struct door_message msg;
		int fds[DOOR_MESSAGE_FDS_MAX];
		size_t nfds = 0;
		int r = door_recv(e->chan_fd, &msg, fds, DOOR_MESSAGE_FDS_MAX, &nfds);
		if (r < 0)
			return r;
		if (msg.type != DOOR_MESSAGE_ATTACH || msg.attach.epoch != current ||
		    memcmp(msg.attach.token, e->request.token, sizeof(msg.attach.token)) != 0) {
			for (size_t i = 0; i < nfds; i++)
				close(fds[i]);
			continue; /* an ATTACH of ours the peer never read, or another one */
		}
		if (msg.attach.ring_size != e->tx.capacity) {
			close(fds[0]);
			return -EPROTO;
		}
		return handoff_adopt_segment(e, fds[0], current);
	}
}

/* ---- the new owner: steps 1 and 6 ---- */

/* Takes the next handoff number `*k` for a handoff of ours: none other may run at once. Returns 0 or -errno. */
static int handoff_claim(struct vi_conn *conn, int fd, uint32_t *k)
{
	struct shm_endpoint *e = &conn->shm;
	struct shm_session *s = e->session;
	long long stale_after = shm_now_ns() + 2LL * HANDOFF_ATTACH_WAIT_MS * 1000000LL;
	for (;;) {
		uint32_t busy = 0;
		if (atomic_compare_exchange_strong(&s->busy, &busy, UINT32_MAX)) {
			uint32_t n = atomic_fetch_add(&s->serial, 1) + 1;
			atomic_store(&s->busy, n);
			*k = n;
			return 0;
		}
		/*
		 * The other side is moving (we answer it when we own the rings), or a new owner
		 * died in its handoff: after twice the peer's ATTACH wait, the mark is stale.
		 */
		if (shm_now_ns() > stale_after && atomic_compare_exchange_strong(&s->busy, &busy, 0))
			continue;
		if (shm_peer_gone(e, fd, false))
			return -ECONNRESET;
		handoff_unlock(e->record);
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
		handoff_lock(e->record);
	}
}

/*
 * Maps the segment in use from the holder that keeps its memfd (the record says which),
 * in place of ours, which the connection left: /proc/PID/fd/FD reopens the same memfd for
 * a process of the same user. Checked as a segment from the door is (seals, size), and
 * that it is that memfd (the inode). Returns 0 or -errno (that holder is gone: wait).
 */
static int handoff_open_current(struct shm_endpoint *e, uint32_t current)
{
	struct shm_handoff_record *r = e->record;
	int pid = atomic_load(&r->seg_pid), fd = atomic_load(&r->seg_fd);
	uint64_t ino = atomic_load(&r->seg_ino);
	if (pid <= 0 || fd < 0 || pid == handoff_pid())
		return -ENOENT;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	int memfd = open(path, O_RDWR | O_CLOEXEC);
	if (memfd < 0)
		return -errno;
	struct stat st;
	if (fstat(memfd, &st) < 0 || (uint64_t)st.st_ino != ino) {
		close(memfd);
		return -EPROTO;
	}
	return handoff_adopt_segment(e, memfd, current);
}

/*
 * Takes the segment in use as it is, without the peer: the caller maps it, the old owner
 * is kept out by the record's lock, and what it moved is in the shared counters, which the
 * new views start from. The closed halves come from the shared flags too.
 */
static int handoff_take_direct(struct vi_conn *conn)
{
	struct shm_endpoint *e = &conn->shm;
	struct shm_ring tx, rx;
	int r = shm_segment_attach(e->base, e->size, e->side, &tx, &rx);
	if (r < 0)
		return r;
	tx.closed = atomic_load(&tx.shared->writer_closed) != 0;
	rx.closed = atomic_load(&rx.shared->reader_closed) != 0;
	tx.wake_fd = rx.wake_fd = e->peer_wake_fd;
	e->tx = tx;
	e->rx = rx;
	e->shut_wr = e->shut_wr || tx.closed;
	shm_handoff_watch(e);
	return 0;
}

/* Wakes the peer wherever it sleeps: its eventfd always, its futexes when we map its rings. */
static void handoff_wake_peer(struct shm_endpoint *e, uint32_t current)
{
	handoff_eventfd_write(e->peer_wake_fd);
	if (e->epoch != current || e->base == NULL)
		return;
	/*
	 * The peer sleeps as the reader of our ring or the writer of its own. It announces its
	 * sleep, then looks at the intermit word (the rings' attention): we stored that word
	 * first, so either it sees it or we see its announcement here (both seq_cst).
	 */
	struct shm_segment_control *control = e->base;
	int mine = e->side == SHM_SEGMENT_CONNECTOR ? 0 : 1;
	struct futex_sem *sems[2] = { &control->rings[mine].readable,
				      &control->rings[1 - mine].writable };
	for (int i = 0; i < 2; i++)
		if (futex_sem_waiters(sems[i]) & FUTEX_SEM_COUNT_MASK)
			futex_sem_post(sems[i]);
}

/* The end of a handoff that moved the connection here: owner, count, log (HOW: its kind). */
static void handoff_done(struct vi_conn *conn, int fd, uint32_t k,
			 enum shm_handoff_trigger trigger, long long t0, const char *how)
{
	struct shm_endpoint *e = &conn->shm;
	atomic_store(&e->session->busy, 0);
	atomic_store(&e->record->owner, handoff_pid());
	conn->handoffs++;
	if (vi_log_enabled(VI_LOG_CONNS))
		vi_log_line("conns: fd=%d handoff epoch=%u to pid=%d (%s) in=%zd out=%zd us=%lld%s",
			    fd, k, handoff_pid(), trigger == SHM_TRIGGER_READ ? "read" : "write",
			    shm_ring_readable(&e->rx), shm_ring_readable(&e->tx),
			    (shm_now_ns() - t0) / 1000, how);
}

static int handoff_take(struct vi_conn *conn, int fd, enum shm_handoff_trigger trigger)
{
	struct shm_endpoint *e = &conn->shm;
	struct shm_session *s = e->session;
	long long t0 = shm_now_ns();
	uint32_t k = 0;
	const char *why = "the peer is gone";
	size_t cap = (size_t)e->tx.capacity;
	ssize_t size = shm_segment_size(cap);
	int memfd = -1;
	void *base = MAP_FAILED;
	int err = handoff_claim(conn, fd, &k);
	if (err < 0)
		goto fail;
	memfd = size < 0 ? (int)size : memfd_seal_create("viaudit", (size_t)size);
	if (memfd < 0 || (base = memfd_seal_map(memfd, (size_t)size, &err)) == MAP_FAILED ||
	    (err = shm_segment_init(base, (size_t)size, cap)) < 0) {
		err = memfd < 0 ? memfd : err;
		why = "no memory for the new segment";
		goto fail;
	}
	/* Step 1: intermit, with the new endpoint and the proof. */
	atomic_store_explicit(&s->sides[e->side].intermit, k, memory_order_seq_cst);
	struct door_message msg = { .type = DOOR_MESSAGE_ATTACH };
	memcpy(msg.attach.token, e->request.token, sizeof(msg.attach.token));
	msg.attach.epoch = k;
	msg.attach.ring_size = (uint32_t)cap;
	while ((err = door_send(e->chan_fd, &msg, &memfd, 1)) == -EAGAIN)
		door_wait(e->chan_fd, POLLOUT, HANDOFF_POLL_MS);
	why = "the session channel is closed";
	if (err < 0)
		goto fail;
	uint32_t current = atomic_load_explicit(&s->epoch, memory_order_acquire);
	handoff_wake_peer(e, current);
	if (vi_transport_handoff_idle != NULL)
		vi_transport_handoff_idle();
	/* A peer away from the socket cannot answer: then take the segment in use as it is. */
	long long away = shm_now_ns() + HANDOFF_AWAY_MS * 1000000LL;
	/* Steps 2-5 happen at the peer; wait for its report. */
	for (;;) {
		uint32_t sw = atomic_load_explicit(&s->sides[e->side].switched, memory_order_acquire);
		if (sw == k)
			break;
		if (away >= 0 && shm_now_ns() >= away) {
			uint32_t p = atomic_load_explicit(&s->sides[e->side].paused, memory_order_acquire);
			away = -1;
			bool mapped = e->epoch == current && e->base != NULL;
			if (!mapped && handoff_open_current(e, current) == 0)
				mapped = true;
			if (mapped && p != k &&
			    atomic_compare_exchange_strong(&s->sides[e->side].paused, &p,
							   k | SHM_SESSION_CANCELLED)) {
				munmap(base, (size_t)size);
				base = MAP_FAILED;
				close(memfd);
				memfd = -1;
				why = "the segment in use is not consistent";
				if ((err = handoff_take_direct(conn)) < 0)
					goto fail;
				handoff_done(conn, fd, k, trigger, t0,
					     " direct (the peer did not answer within "
					     HANDOFF_NUMBER_TEXT(HANDOFF_AWAY_MS) " ms)");
				return 0;
			}
		}
		if (atomic_load_explicit(&s->sides[e->side].refused, memory_order_acquire) == k) {
			why = "the peer refused the new endpoint";
			goto fail;
		}
		long long wait_ns = away >= 0 ? HANDOFF_AWAY_MS * 1000000LL : HANDOFF_POLL_MS * 1000000LL;
		int w = futex_sem_wait(&s->sides[e->side].switched, sw, wait_ns);
		if (w == -ETIMEDOUT) {
			struct pollfd p = { .fd = e->chan_fd, .events = 0 };
			bool chan_gone = poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
			if (shm_peer_gone(e, fd, true) || chan_gone) {
				/* It may have switched just before it left: then the bytes are there. */
				if (atomic_load_explicit(&s->sides[e->side].switched,
							 memory_order_acquire) == k)
					break;
				why = chan_gone ? "the session channel hung up" : "the peer is gone";
				goto fail;
			}
			handoff_eventfd_write(e->peer_wake_fd);
		}
	}
	/* Step 6: move to the new rings and retire the old. */
	struct shm_ring tx, rx;
	why = "the new segment is not consistent";
	if ((err = shm_segment_attach(base, (size_t)size, e->side, &tx, &rx)) < 0)
		goto fail;
	tx.wake_fd = rx.wake_fd = e->peer_wake_fd;
	void *old = e->base;
	size_t old_size = e->size;
	e->tx = tx;
	e->rx = rx;
	e->base = base;
	e->size = (size_t)size;
	e->epoch = k;
	shm_handoff_watch(e);
	handoff_retire(e, old, old_size, false, NULL); /* the peer frees the first rings' pages */
	handoff_keep_segment(e, memfd);
	memfd = -1;
	handoff_done(conn, fd, k, trigger, t0, "");
	return 0;

fail:
	if (k != 0)
		atomic_store(&s->busy, 0);
	if (memfd >= 0)
		close(memfd);
	if (base != MAP_FAILED)
		munmap(base, (size_t)size);
	e->peer_gone = true;
	/*
	 * The peer is gone. When we map the segment in use, what it wrote before it went is
	 * still to be read: take the segment as it is, then EOF follows, as on TCP.
	 */
	if (e->epoch != atomic_load(&s->epoch))
		handoff_take_parting(e);
	if (e->epoch == atomic_load(&s->epoch) && e->base != NULL && handoff_take_direct(conn) == 0) {
		atomic_store(&e->record->owner, handoff_pid());
		if (vi_log_enabled(VI_LOG_CONNS))
			vi_log_line("conns: fd=%d handoff epoch=%u failed: %s; took the segment in use",
				    fd, k, why);
		return 0;
	}
	if (vi_log_enabled(VI_LOG_CONNS))
		vi_log_line("conns: fd=%d handoff epoch=%u failed: %s", fd, k, why);
	return -ECONNRESET;
}

int shm_handoff_enter(struct vi_conn *conn, int fd, enum shm_handoff_trigger trigger,
		      bool resumed)
{
	struct shm_endpoint *e = &conn->shm;
	struct shm_handoff_record *r = e->record;
	handoff_lock(r);
	int owner = atomic_load_explicit(&r->owner, memory_order_relaxed);
	uint32_t current = atomic_load_explicit(&e->session->epoch, memory_order_acquire);
	if (owner == handoff_pid() && e->epoch == current)
		return 0;
	if (resumed && owner != 0 && owner != handoff_pid() && handoff_pid_alive(owner)) {
		/* Taken while we slept: wait for its owner to give it up, not ping-pong. */
		handoff_unlock(r);
		struct timespec ts = { 0, HANDOFF_DISPOSSESSED_US * 1000L };
		nanosleep(&ts, NULL);
		return -EAGAIN;
	}
	int err = handoff_take(conn, fd, trigger);
	if (err < 0)
		handoff_unlock(r);
	return err;
}

void shm_handoff_watch(struct shm_endpoint *e)
{
	if (e->session == NULL)
		return;
	const _Atomic uint32_t *word = &e->session->sides[1 - e->side].intermit;
	uint32_t seen = e->epoch > e->answered ? e->epoch : e->answered;
	e->tx.attention = e->rx.attention = word;
	e->tx.attention_seen = e->rx.attention_seen = seen;
}

bool shm_handoff_owned(const struct shm_endpoint *e)
{
	if (e->record == NULL)
		return true;
	return atomic_load(&e->record->owner) == handoff_pid() &&
	       e->epoch == atomic_load(&e->session->epoch);
}

void shm_handoff_leave(struct shm_endpoint *e)
{
	handoff_unlock(e->record);
}
