/*
 * Readiness: poll, ppoll, select, pselect and epoll over a mix of plain descriptors and
 * virtual sockets whose bytes move outside the kernel socket (shared memory).
 *
 * A virtual socket with data or space is answered at once, from its rings. Otherwise the
 * wait spins for the endpoint's spin time, then sleeps in the kernel on the plain
 * descriptors plus, per virtual socket, the eventfd its peer writes when it makes the
 * socket ready (armed first, so the peer knows to write it) and the kernel socket itself
 * for RDHUP (a peer that died). Sockets on the tcp endpoint are plain here: the kernel's
 * readiness is theirs.
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

/* ---- time ---- */

static long long readiness_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Milliseconds left until `deadline` (-1: none), for poll's timeout. */
static int readiness_left_ms(long long deadline)
{
	if (deadline < 0)
		return -1;
	long long left = deadline - readiness_now_ns();
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

/* The endpoint's readiness, as poll(2) events for `events`. */
static short readiness_of(struct vsock *vs, int fd, short events)
{
	int ev = vs->conn.ops->poll(&vs->conn, fd);
	if (ev < 0)
		return -1;
	return (short)(ev & (events | POLLERR | POLLHUP | POLLNVAL));
}

/* The policy's spin_us, or the ring's default sized to the machine (none on one CPU). */
static long readiness_spin_ns(void)
{
	static long machine_us = -1; /* sysconf reads a file: once is enough */
	long us = interpose_hooks.shm.spin_us;
	if (us < 0) {
		if (machine_us < 0)
			machine_us = shm_spin_default_us();
		us = machine_us;
	}
	return us * 1000L;
}

/* ---- poll ---- */

/* Fills revents of every virtual fd; returns how many are ready. */
static int poll_scan(struct pollfd *fds, nfds_t nfds)
{
	int ready = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		struct vsock *vs = fds[i].fd >= 0 ? interpose_polled(fds[i].fd) : NULL;
		if (vs == NULL)
			continue;
		short r = readiness_of(vs, fds[i].fd, fds[i].events);
		fds[i].revents = r < 0 ? 0 : r;
		if (fds[i].revents)
			ready++;
	}
	return ready;
}

/* Asks the kernel about the plain fds only, in one poll(2) with timeout 0; returns how many are ready. */
static int poll_plain_now(struct pollfd *fds, nfds_t nfds)
{
	struct pollfd stack[64];
	nfds_t n = 0, i;
	for (i = 0; i < nfds && n < 64; i++)
		if (fds[i].fd < 0 || interpose_polled(fds[i].fd) == NULL)
			stack[n++] = (struct pollfd){ .fd = fds[i].fd, .events = fds[i].events };
	if (n == 0)
		return 0;
	if (i < nfds) {
		/* More plain fds than fit here: ask about each on its own. */
		int ready = 0;
		for (i = 0; i < nfds; i++) {
			if (fds[i].fd >= 0 && interpose_polled(fds[i].fd) != NULL)
				continue;
			fds[i].revents = 0;
			if (fds[i].fd >= 0 && vi_libc.poll(&fds[i], 1, 0) < 0)
				fds[i].revents = 0;
			ready += fds[i].revents != 0;
		}
		return ready;
	}
	if (vi_libc.poll(stack, n, 0) < 0)
		for (i = 0; i < n; i++)
			stack[i].revents = 0;
	int ready = 0;
	n = 0;
	for (i = 0; i < nfds; i++) {
		if (fds[i].fd >= 0 && interpose_polled(fds[i].fd) != NULL)
			continue;
		fds[i].revents = stack[n++].revents;
		ready += fds[i].revents != 0;
	}
	return ready;
}

/*
 * The wait of poll and ppoll (`sigmask` may be NULL) when some fd is virtual. `deadline` is
 * absolute (CLOCK_MONOTONIC ns) or -1. Returns >= 0 or -errno.
 */
static int poll_virtual(struct pollfd *fds, nfds_t nfds, long long deadline,
			const sigset_t *sigmask)
{
	long long spin_end = readiness_now_ns() + readiness_spin_ns();
	unsigned turns = 0;
	for (;;) {
		int ready = poll_scan(fds, nfds);
		if (ready > 0 || deadline == 0 || (deadline > 0 && readiness_now_ns() >= deadline))
			return ready + poll_plain_now(fds, nfds);
		if (readiness_now_ns() < spin_end) {
			/* Every 64 turns, let a peer that shares this CPU run (see shm_ring_wait). */
			if ((++turns & 63) == 0)
				sched_yield();
			continue;
		}

		/* Sleep: plain fds as given, and per virtual fd its wake fd and kernel socket. */
		struct pollfd stack[256];
		nfds_t cap = nfds * 3;
		struct pollfd *k = cap <= 256 ? stack
					      : mmap(NULL, cap * sizeof(*k), PROT_READ | PROT_WRITE,
						     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (k == MAP_FAILED)
			return -ENOMEM;
		nfds_t n = 0;
		bool ready_now = false, pending = false;
		for (nfds_t i = 0; i < nfds; i++) {
			struct vsock *vs = fds[i].fd >= 0 ? interpose_polled(fds[i].fd) : NULL;
			if (vs == NULL) {
				k[n++] = (struct pollfd){ .fd = fds[i].fd, .events = fds[i].events };
				continue;
			}
			int wake = vs->conn.ops->arm(&vs->conn, fds[i].fd, fds[i].events);
			if (wake < 0) {
				ready_now = true;
				k[n++] = (struct pollfd){ .fd = -1 };
			} else {
				k[n++] = (struct pollfd){ .fd = wake, .events = POLLIN };
			}
			bool setting_up = vs->conn.ops->pending(&vs->conn);
			pending |= setting_up;
			k[n++] = (struct pollfd){ .fd = fds[i].fd,
						  .events = POLLRDHUP | (setting_up ? POLLIN : 0) };
		}
		int r = 0, err = 0;
		if (!ready_now) {
			struct timespec ts, *tp = NULL;
			int ms = readiness_left_ms(deadline);
			if (pending && (ms < 0 || ms > 100))
				ms = 100; /* a connection being set up decides within its own time */
			if (ms >= 0) {
				ts.tv_sec = ms / 1000;
				ts.tv_nsec = (ms % 1000) * 1000000L;
				tp = &ts;
			}
			r = vi_libc.ppoll(k, n, tp, sigmask);
			if (r < 0)
				err = vi_libc_errno();
		}
		n = 0;
		int plain_ready = 0;
		for (nfds_t i = 0; i < nfds; i++) {
			struct vsock *vs = fds[i].fd >= 0 ? interpose_polled(fds[i].fd) : NULL;
			if (vs == NULL) {
				fds[i].revents = r > 0 ? k[n].revents : 0;
				plain_ready += fds[i].revents != 0;
				n++;
				continue;
			}
			vs->conn.ops->disarm(&vs->conn);
			if (r > 0 && (k[n + 1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
				vs->conn.ops->check_peer(&vs->conn, fds[i].fd);
			n += 2;
		}
		if (k != stack)
			munmap(k, cap * sizeof(*k));
		if (err != 0)
			return -err;
		ready = poll_scan(fds, nfds);
		if (ready + plain_ready > 0)
			return ready + plain_ready;
		spin_end = 0; /* woken for nothing (or timed out): sleep again at once */
		if (deadline >= 0 && readiness_now_ns() >= deadline)
			return 0;
	}
}

static bool poll_has_virtual(const struct pollfd *fds, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (fds[i].fd >= 0 && interpose_polled(fds[i].fd) != NULL)
			return true;
	return false;
}

static long long deadline_from_ms(int timeout)
{
	if (timeout < 0)
		return -1;
	return timeout == 0 ? 0 : readiness_now_ns() + (long long)timeout * 1000000LL;
}

static long long deadline_from_timespec(const struct timespec *ts)
{
	if (ts == NULL)
		return -1;
	long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
	return ns == 0 ? 0 : readiness_now_ns() + ns;
}

int vi_wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	if (!poll_has_virtual(fds, nfds))
		return vi_libc.poll(fds, nfds, timeout);
	return (int)interpose_return(poll_virtual(fds, nfds, deadline_from_ms(timeout), NULL));
}

int vi_wrap___poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds || !poll_has_virtual(fds, nfds))
		return vi_libc.__poll_chk(fds, nfds, timeout, fdslen);
	return vi_wrap_poll(fds, nfds, timeout);
}

int vi_wrap_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		  const sigset_t *sigmask)
{
	if (!poll_has_virtual(fds, nfds))
		return vi_libc.ppoll(fds, nfds, timeout, sigmask);
	return (int)interpose_return(
		poll_virtual(fds, nfds, deadline_from_timespec(timeout), sigmask));
}

int vi_wrap___ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			const sigset_t *sigmask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds || !poll_has_virtual(fds, nfds))
		return vi_libc.__ppoll_chk(fds, nfds, timeout, sigmask, fdslen);
	return vi_wrap_ppoll(fds, nfds, timeout, sigmask);
}

/* ---- select: the same wait, through a pollfd array ---- */

static bool select_has_virtual(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
		    interpose_polled(fd) != NULL)
			return true;
	return false;
}

static int select_virtual(int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds, long long deadline,
			  const sigset_t *sigmask)
{
	if (nfds < 0 || nfds > FD_SETSIZE)
		return -EINVAL;
	struct pollfd p[FD_SETSIZE];
	nfds_t n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;
		if (rfds && FD_ISSET(fd, rfds))
			ev |= POLLIN;
		if (wfds && FD_ISSET(fd, wfds))
			ev |= POLLOUT;
		if (efds && FD_ISSET(fd, efds))
			ev |= POLLPRI;
		if (ev)
			p[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	int r = poll_virtual(p, n, deadline, sigmask);
	if (r < 0)
		return r;
	int count = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (p[i].revents & POLLNVAL)
			return -EBADF;
		bool in = (p[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
		bool out = (p[i].revents & (POLLOUT | POLLERR)) != 0;
		bool pri = (p[i].revents & POLLPRI) != 0;
		if (rfds && FD_ISSET(p[i].fd, rfds) && !in)
			FD_CLR(p[i].fd, rfds);
		if (wfds && FD_ISSET(p[i].fd, wfds) && !out)
			FD_CLR(p[i].fd, wfds);
		if (efds && FD_ISSET(p[i].fd, efds) && !pri)
			FD_CLR(p[i].fd, efds);
		count += (rfds && FD_ISSET(p[i].fd, rfds)) + (wfds && FD_ISSET(p[i].fd, wfds)) +
			 (efds && FD_ISSET(p[i].fd, efds));
	}
	return count;
}

int vi_wrap_select(int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds, struct timeval *timeout)
{
	if (!select_has_virtual(nfds, rfds, wfds, efds))
		return vi_libc.select(nfds, rfds, wfds, efds, timeout);
	long long deadline = -1;
	if (timeout != NULL) {
		long long ns = (long long)timeout->tv_sec * 1000000000LL + timeout->tv_usec * 1000LL;
		deadline = ns == 0 ? 0 : readiness_now_ns() + ns;
	}
	int r = select_virtual(nfds, rfds, wfds, efds, deadline, NULL);
	if (timeout != NULL && deadline > 0) {
		/* Linux's select leaves the time not slept in *timeout. */
		long long left = deadline - readiness_now_ns();
		left = left < 0 ? 0 : left;
		timeout->tv_sec = left / 1000000000LL;
		timeout->tv_usec = (left % 1000000000LL) / 1000;
	}
	return (int)interpose_return(r);
}

int vi_wrap_pselect(int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds,
		    const struct timespec *timeout, const sigset_t *sigmask)
{
	if (!select_has_virtual(nfds, rfds, wfds, efds))
		return vi_libc.pselect(nfds, rfds, wfds, efds, timeout, sigmask);
	return (int)interpose_return(
		select_virtual(nfds, rfds, wfds, efds, deadline_from_timespec(timeout), sigmask));
}

/* ---- epoll ---- */

/* A virtual socket registered in an epoll set, with the program's events and data. */
struct vepoll_entry {
	int fd; /* -1: free */
	struct vsock *vs;
	unsigned generation;
	uint32_t events;
	epoll_data_t data;
	bool disabled;    /* EPOLLONESHOT fired */
	int kernel_wake;  /* the wake fd registered in the kernel set, or -1 */
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
					    .kernel_wake = -1, .last_ev = 0 };
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
			struct epoll_event ke = { .events = EPOLLIN | EPOLLET, .data.u64 = v->tag + i };
			int saved = vi_libc_errno();
			if (vi_libc.epoll_ctl(epfd, EPOLL_CTL_ADD, wake, &ke) < 0 &&
			    vi_libc_errno() == EEXIST)
				vi_libc.epoll_ctl(epfd, EPOLL_CTL_MOD, wake, &ke);
			vi_libc_set_errno(saved);
			e->kernel_wake = wake;
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
			e->vs->conn.ops->disarm(&e->vs->conn);
	}
}

static int epoll_virtual(int epfd, struct vepoll *v, struct epoll_event *events, int maxevents,
			 int timeout, const sigset_t *sigmask, bool with_mask)
{
	long long deadline = deadline_from_ms(timeout);
	long long spin_end = readiness_now_ns() + readiness_spin_ns();
	unsigned turns = 0;
	bool kernel_first = (v->turn++ & 1) != 0;
	for (;;) {
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
		if (n > 0 || expired) {
			if (n < maxevents) {
				int k = vi_libc.epoll_wait(epfd, events + n, maxevents - n, 0);
				if (k > 0)
					n += vepoll_filter(v, events + n, k);
			}
			return n;
		}
		if (readiness_now_ns() < spin_end) {
			if ((++turns & 63) == 0)
				sched_yield();
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
		if (k + m > 0)
			return k + m;
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
