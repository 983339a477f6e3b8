/*
 * epoll over a mix of plain descriptors and virtual sockets whose bytes move outside the
 * kernel: a registry per epoll set of its virtual sockets with the program's events and
 * data, answered from their rings (level, edge, oneshot), then the kernel set, which also
 * holds viaudit's own registrations (wake eventfds, the kernel sockets for a dead peer)
 * under a random tag that is filtered out of the results. The wait is readiness.c's: spin,
 * arm, sleep.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <time.h>

#include "interpose_private.h"

/* A virtual socket registered in an epoll set, with the program's events and data. */
struct vepoll_entry {
	int fd; /* -1: free */
	struct vsock *vs;
	unsigned generation;
	uint32_t events;
	epoll_data_t data;
	bool disabled;    /* EPOLLONESHOT fired */
	int kernel_wake;  /* the wake fd registered in the kernel set, or -1 */
	int kernel_live;  /* the endpoint's liveness fd registered there (not the socket), or -1 */
	unsigned long long last_in, last_out; /* progress at the last edge reported */
	int last_ev;
};

#define VEPOLL_MAX 4096

struct vepoll {
	atomic_flag lock;
	uint64_t tag; /* epoll_data of viaudit's own registrations: tag + entry index */
	size_t n;     /* entries in use, some maybe free (fd -1) */
	size_t cursor;  /* where the next scan starts, so every ready entry gets its turn */
	unsigned turn;  /* odd turns ask the kernel first, so plain fds are not starved either */
	struct vepoll_entry entries[VEPOLL_MAX];
};

/* Indexed by the epoll fd; NULL until a virtual socket joins that set. */
static _Atomic(struct vepoll *) *vepolls;
static atomic_flag vepolls_init_lock = ATOMIC_FLAG_INIT;

static void vepoll_lock(struct vepoll *v)
{
	/* Acquire pairs with the release in vepoll_unlock. */
	while (atomic_flag_test_and_set_explicit(&v->lock, memory_order_acquire))
		sched_yield();
}

static void vepoll_unlock(struct vepoll *v)
{
	atomic_flag_clear_explicit(&v->lock, memory_order_release);
}

static struct vepoll *vepoll_get(int epfd)
{
	if (vepolls == NULL || epfd < 0 || (size_t)epfd >= vsock_table.size)
		return NULL;
	return atomic_load_explicit(&vepolls[epfd], memory_order_acquire);
}

static struct vepoll *vepoll_create(int epfd)
{
	if (epfd < 0 || (size_t)epfd >= vsock_table.size)
		return NULL;
	if (vepolls == NULL) {
		while (atomic_flag_test_and_set_explicit(&vepolls_init_lock, memory_order_acquire))
			sched_yield();
		if (vepolls == NULL) {
			void *p = mmap(NULL, vsock_table.size * sizeof(*vepolls), PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p != MAP_FAILED)
				vepolls = p;
		}
		atomic_flag_clear_explicit(&vepolls_init_lock, memory_order_release);
		if (vepolls == NULL)
			return NULL;
	}
	struct vepoll *v = vepoll_get(epfd);
	if (v != NULL)
		return v;
	v = mmap(NULL, sizeof(*v), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return NULL;
	v->tag = ((uint64_t)readiness_now_ns() * 0x9E3779B97F4A7C15ull) & ~0xffffull;
	struct vepoll *expected = NULL;
	if (!atomic_compare_exchange_strong(&vepolls[epfd], &expected, v)) {
		munmap(v, sizeof(*v));
		return expected;
	}
	return v;
}

void readiness_forget_epoll(int epfd)
{
	struct vepoll *v = vepoll_get(epfd);
	if (v == NULL)
		return;
	atomic_store(&vepolls[epfd], NULL);
	munmap(v, sizeof(*v));
}

static struct vepoll_entry *vepoll_find(struct vepoll *v, int fd)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->entries[i].fd == fd)
			return &v->entries[i];
	return NULL;
}

static bool vepoll_is_ours(const struct vepoll *v, uint64_t data)
{
	return data - v->tag < VEPOLL_MAX;
}

/*
 * Forgets an entry. Its kernel registrations are removed only while the socket is still
 * the one registered: once it was closed, the kernel dropped them itself, and the numbers
 * may already name other descriptors of the program's in this very set.
 */
static void vepoll_drop(int epfd, struct vepoll_entry *e, bool live)
{
	if (live) {
		if (e->kernel_wake >= 0)
			vi_libc.epoll_ctl(epfd, EPOLL_CTL_DEL, e->kernel_wake, NULL);
		if (e->kernel_live >= 0)
			vi_libc.epoll_ctl(epfd, EPOLL_CTL_DEL, e->kernel_live, NULL);
		vi_libc.epoll_ctl(epfd, EPOLL_CTL_DEL, e->fd, NULL);
	}
	e->fd = -1;
}

static bool vepoll_entry_live(const struct vepoll_entry *e);

int vi_wrap_epoll_create(int size)
{
	return vi_libc.epoll_create(size);
}

int vi_wrap_epoll_create1(int flags)
{
	return vi_libc.epoll_create1(flags);
}

int vi_wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct vsock *vs = interpose_polled(fd);
	struct vepoll *v = vepoll_get(epfd);
	if (vs == NULL && (v == NULL || vepoll_find(v, fd) == NULL))
		return vi_libc.epoll_ctl(epfd, op, fd, event);
	if (v == NULL && (v = vepoll_create(epfd)) == NULL)
		return (int)interpose_return(-ENOMEM);
	vepoll_lock(v);
	struct vepoll_entry *e = vepoll_find(v, fd);
	long r = 0;
	switch (op) {
	case EPOLL_CTL_ADD: {
		if (e != NULL) {
			r = -EEXIST;
			break;
		}
		if (event == NULL) {
			r = -EFAULT;
			break;
		}
		size_t i = 0;
		while (i < v->n && v->entries[i].fd >= 0)
			i++;
		if (i == VEPOLL_MAX) {
			r = -ENOSPC;
			break;
		}
		/* The kernel checks epfd and fd for us, and watches the socket for a dead peer. */
		struct epoll_event live = { .events = EPOLLRDHUP | EPOLLET, .data.u64 = v->tag + i };
		if (vi_libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &live) < 0) {
			r = -vi_libc_errno();
			break;
		}
		e = &v->entries[i];
		*e = (struct vepoll_entry){ .fd = fd, .vs = vs, .generation = vs->generation,
					    .events = event->events, .data = event->data,
					    .kernel_wake = -1, .kernel_live = -1, .last_ev = 0 };
		if (i == v->n)
			v->n++;
		break;
	}
	case EPOLL_CTL_MOD:
		if (e == NULL) {
			r = -ENOENT;
		} else if (event == NULL) {
			r = -EFAULT;
		} else {
			e->events = event->events;
			e->data = event->data;
			e->disabled = false;
			e->last_ev = 0;
		}
		break;
	case EPOLL_CTL_DEL:
		if (e == NULL)
			r = -ENOENT;
		else
			vepoll_drop(epfd, e, vepoll_entry_live(e));
		break;
	default:
		r = -EINVAL;
	}
	vepoll_unlock(v);
	return (int)interpose_return(r);
}

/* Whether the entry still names the virtual socket it was registered for. */
static bool vepoll_entry_live(const struct vepoll_entry *e)
{
	return e->fd >= 0 && vsock_get(e->fd) == e->vs && e->vs->generation == e->generation &&
	       e->vs->kind == VSOCK_STREAM && e->vs->conn.ops->poll != NULL;
}

/* Appends the ready virtual sockets to out (at most max); returns how many. */
static int vepoll_scan(int epfd, struct vepoll *v, struct epoll_event *out, int max)
{
	int n = 0;
	size_t start = v->n > 0 ? v->cursor % v->n : 0;
	for (size_t k = 0; k < v->n && n < max; k++) {
		size_t i = (start + k) % v->n;
		struct vepoll_entry *e = &v->entries[i];
		if (e->fd < 0 || e->disabled)
			continue;
		if (!vepoll_entry_live(e)) {
			vepoll_drop(epfd, e, false); /* closed behind our back */
			continue;
		}
		uint32_t want = e->events | EPOLLERR | EPOLLHUP;
		int ev = e->vs->conn.ops->poll(&e->vs->conn, e->fd);
		if (ev < 0)
			continue;
		uint32_t ready = (uint32_t)ev & want;
		if (ready == 0)
			continue;
		if (e->events & EPOLLET) {
			unsigned long long in, outp;
			e->vs->conn.ops->progress(&e->vs->conn, &in, &outp);
			bool fresh = ((ready & ~(uint32_t)e->last_ev) != 0) ||
				     ((ready & EPOLLIN) && in > e->last_in) ||
				     ((ready & EPOLLOUT) && outp > e->last_out);
			e->last_in = in;
			e->last_out = outp;
			e->last_ev = (int)ready;
			if (!fresh)
				continue;
		}
		out[n].events = ready;
		out[n].data = e->data;
		n++;
		v->cursor = i + 1;
		if (e->events & EPOLLONESHOT)
			e->disabled = true;
	}
	return n;
}

/* Removes viaudit's own registrations from kernel results; returns how many remain. */
static int vepoll_filter(struct vepoll *v, struct epoll_event *ev, int n)
{
	int kept = 0;
	for (int i = 0; i < n; i++) {
		if (vepoll_is_ours(v, ev[i].data.u64)) {
			size_t idx = (size_t)(ev[i].data.u64 - v->tag);
			struct vepoll_entry *e = &v->entries[idx];
			if ((ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && vepoll_entry_live(e) &&
			    ev[i].events != EPOLLIN)
				e->vs->conn.ops->check_peer(&e->vs->conn, e->fd);
			continue;
		}
		ev[kept++] = ev[i];
	}
	return kept;
}

/* Puts one of viaudit's own descriptors in the kernel set under TAG (or updates it), errno kept. */
static void vepoll_watch(int epfd, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ke = { .events = events, .data.u64 = tag };
	int saved = vi_libc_errno();
	if (vi_libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ke) < 0 && vi_libc_errno() == EEXIST)
		vi_libc.epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ke);
	vi_libc_set_errno(saved);
}

/* Arms every entry for sleeping; returns false when one is ready already. */
static bool vepoll_arm(int epfd, struct vepoll *v)
{
	for (size_t i = 0; i < v->n; i++) {
		struct vepoll_entry *e = &v->entries[i];
		if (e->fd < 0 || e->disabled || !vepoll_entry_live(e))
			continue;
		int wake = e->vs->conn.ops->arm(&e->vs->conn, e->fd, (int)e->events);
		if (wake < 0)
			return false;
		if (wake != e->kernel_wake) {
			/*
			 * A new wake fd (the connector's door until the answer came, then its
			 * eventfd). The old one is not deleted by number: the endpoint closed
			 * it, which removed it from the set, and the number may be reused.
			 */
			vepoll_watch(epfd, wake, EPOLLIN | EPOLLET, v->tag + i);
			e->kernel_wake = wake;
		}
		short live_events = 0;
		int live = e->vs->conn.ops->liveness == NULL
				   ? e->fd
				   : e->vs->conn.ops->liveness(&e->vs->conn, e->fd, &live_events);
		if (live != e->fd && live != e->kernel_live) {
			/* The session channel: its HUP, edge-triggered, says the peer is gone. */
			vepoll_watch(epfd, live, EPOLLET, v->tag + i);
			e->kernel_live = live;
		}
	}
	return true;
}

static bool vepoll_any_pending(struct vepoll *v)
{
	bool any = false;
	vepoll_lock(v);
	for (size_t i = 0; i < v->n && !any; i++) {
		struct vepoll_entry *e = &v->entries[i];
		any = e->fd >= 0 && vepoll_entry_live(e) && e->vs->conn.ops->pending(&e->vs->conn);
	}
	vepoll_unlock(v);
	return any;
}

static void vepoll_disarm(struct vepoll *v)
{
	for (size_t i = 0; i < v->n; i++) {
		struct vepoll_entry *e = &v->entries[i];
		if (e->fd >= 0 && vepoll_entry_live(e))
			e->vs->conn.ops->disarm(&e->vs->conn, false); /* wake fds are EPOLLET */
	}
}

static int epoll_virtual(int epfd, struct vepoll *v, struct epoll_event *events, int maxevents,
			 int timeout, const sigset_t *sigmask, bool with_mask)
{
	long long deadline = deadline_from_ms(timeout);
	long long start = readiness_now_ns();
	long spin = readiness_spin_ns();
	long long spin_end = spin > 0 ? start + spin : 0; /* 0: sleep at once */
	unsigned turns = 0;
	bool kernel_first = (v->turn++ & 1) != 0;
	for (bool waited = false;; waited = true) {
		int n = 0;
		if (kernel_first) {
			/* Once per call, on odd turns: plain fds first, then virtual ones. */
			kernel_first = false;
			int k = vi_libc.epoll_wait(epfd, events, maxevents, 0);
			vepoll_lock(v);
			n = k > 0 ? vepoll_filter(v, events, k) : 0;
			n += vepoll_scan(epfd, v, events + n, maxevents - n);
			vepoll_unlock(v);
			if (n > 0)
				return n;
		}
		vepoll_lock(v);
		n = vepoll_scan(epfd, v, events, maxevents);
		vepoll_unlock(v);
		bool expired = deadline == 0 || (deadline > 0 && readiness_now_ns() >= deadline);
		if (n > 0 && waited)
			readiness_spin_learn(readiness_now_ns() - start);
		if (n > 0 || expired) {
			if (n < maxevents) {
				int k = vi_libc.epoll_wait(epfd, events + n, maxevents - n, 0);
				if (k > 0)
					n += vepoll_filter(v, events + n, k);
			}
			return n;
		}
		if (spin_end != 0 && ((++turns & 15) != 0 || readiness_now_ns() < spin_end)) {
			if ((turns & 63) == 0 && !readiness_spin_yield())
				spin_end = 0;
			continue;
		}
		vepoll_lock(v);
		bool sleep = vepoll_arm(epfd, v);
		vepoll_unlock(v);
		int k = 0;
		if (sleep) {
			int ms = readiness_left_ms(deadline);
			if (vepoll_any_pending(v) && (ms < 0 || ms > 100))
				ms = 100; /* a connection being set up decides within its own time */
			k = with_mask ? vi_libc.epoll_pwait(epfd, events, maxevents, ms, sigmask)
				      : vi_libc.epoll_wait(epfd, events, maxevents, ms);
		}
		int err = k < 0 ? vi_libc_errno() : 0;
		vepoll_lock(v);
		vepoll_disarm(v);
		if (k > 0)
			k = vepoll_filter(v, events, k);
		if (k < 0)
			k = 0;
		int m = vepoll_scan(epfd, v, events + k, maxevents - k);
		vepoll_unlock(v);
		if (err != 0 && k + m == 0)
			return -err;
		if (k + m > 0) {
			readiness_spin_learn(readiness_now_ns() - start);
			return k + m;
		}
		spin_end = 0;
		if (deadline >= 0 && readiness_now_ns() >= deadline)
			return 0;
	}
}

int vi_wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct vepoll *v = vepoll_get(epfd);
	if (v == NULL || maxevents <= 0)
		return vi_libc.epoll_wait(epfd, events, maxevents, timeout);
	return (int)interpose_return(epoll_virtual(epfd, v, events, maxevents, timeout, NULL, false));
}

int vi_wrap_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			const sigset_t *sigmask)
{
	struct vepoll *v = vepoll_get(epfd);
	if (v == NULL || maxevents <= 0)
		return vi_libc.epoll_pwait(epfd, events, maxevents, timeout, sigmask);
	return (int)interpose_return(
		epoll_virtual(epfd, v, events, maxevents, timeout, sigmask, true));
}
