/*
 * Readiness: poll, ppoll, select and pselect over a mix of plain descriptors and
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
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <time.h>

#include "interpose_private.h"

/* ---- time ---- */

long long readiness_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Milliseconds left until `deadline` (-1: none), for poll's timeout. */
int readiness_left_ms(long long deadline)
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
static long readiness_spin_max_ns(void)
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

/*
 * How long this thread's next wait spins: the policy's spin while spinning pays, less
 * while it does not. A spin pays when what was waited for comes within it (a ping-pong
 * peer answers in microseconds); on a machine with more busy threads than CPUs (eight
 * database backends and their clients on two CPUs) the wait is long, and spinning only
 * takes the CPU from the peer that would answer. Each wait that lasted longer than the
 * policy's spin halves the next one; one that ended within it restores it.
 */
static __thread long readiness_spin_budget_ns = -1;

long readiness_spin_ns(void)
{
	long max = readiness_spin_max_ns();
	if (readiness_spin_budget_ns < 0 || readiness_spin_budget_ns > max)
		readiness_spin_budget_ns = max;
	return readiness_spin_budget_ns;
}

/*
 * The spin's turn to let another thread run (every 64 turns). Returns false when one did
 * run -- sched_yield came back late -- so this CPU is wanted by others: the spin stops,
 * and the next waits sleep at once (until a wait ends within the spin again).
 */
bool readiness_spin_yield(void)
{
	long long before = readiness_now_ns();
	sched_yield();
	if (readiness_now_ns() - before < 5000)
		return true;
	readiness_spin_budget_ns = 0;
	return false;
}

void readiness_spin_learn(long long waited_ns)
{
	long max = readiness_spin_max_ns();
	if (waited_ns <= max)
		readiness_spin_budget_ns = max;
	else
		readiness_spin_budget_ns = readiness_spin_budget_ns < 2000 ? 0 : readiness_spin_budget_ns / 2;
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
	long long start = readiness_now_ns();
	long spin = readiness_spin_ns();
	long long spin_end = spin > 0 ? start + spin : 0; /* 0: sleep at once */
	unsigned turns = 0;
	for (bool waited = false;; waited = true) {
		int ready = poll_scan(fds, nfds);
		if (ready > 0 && waited)
			readiness_spin_learn(readiness_now_ns() - start);
		if (ready > 0 || deadline == 0 || (deadline > 0 && readiness_now_ns() >= deadline))
			return ready + poll_plain_now(fds, nfds);
		if (spin_end != 0 && ((++turns & 15) != 0 || readiness_now_ns() < spin_end)) {
			/* Every 64 turns, let a peer that shares this CPU run (see shm_ring_wait). */
			if ((turns & 63) == 0 && !readiness_spin_yield())
				spin_end = 0;
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
			short live_events = POLLRDHUP | (setting_up ? POLLIN : 0);
			int live = vs->conn.ops->liveness == NULL
					   ? fds[i].fd
					   : vs->conn.ops->liveness(&vs->conn, fds[i].fd, &live_events);
			k[n++] = (struct pollfd){ .fd = live, .events = live_events };
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
			/* Read an eventfd only when it fired: each read is a system call. */
			vs->conn.ops->disarm(&vs->conn, r > 0 && (k[n].revents & POLLIN) != 0);
			if (r > 0 && (k[n + 1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
				vs->conn.ops->check_peer(&vs->conn, fds[i].fd);
			n += 2;
		}
		if (k != stack)
			munmap(k, cap * sizeof(*k));
		if (err != 0)
			return -err;
		ready = poll_scan(fds, nfds);
		if (ready + plain_ready > 0) {
			readiness_spin_learn(readiness_now_ns() - start);
			return ready + plain_ready;
		}
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

long long deadline_from_ms(int timeout)
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
