/*
 * The same-host endpoint's data path: recvmsg/sendmsg/shutdown/poll on a pair of rings,
 * with kernel TCP semantics (blocking and not, MSG_PEEK/WAITALL/DONTWAIT/NOSIGNAL, EOF,
 * EPIPE and SIGPIPE, half-close, reset).
 *
 * The kernel TCP socket stays open and idle beside the rings. It is also how a dead peer
 * is noticed: a process killed with SIGKILL never closes its rings, but the kernel closes
 * its socket, so ours reports RDHUP while the ring is still open.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "door.h"
#include "libc.h"
#include "log.h"
#include "memfd_seal.h"
#include "shm_handoff.h"
#include "shm_private.h"
#include "shm_segment.h"
#include "transport.h"

/* How long a blocking call sleeps before it looks at the kernel socket for a dead peer. */
#define SHM_LIVENESS_MS 100

/* How long a connector waits for the listener's answer before it stays on TCP. */
#define SHM_ANSWER_MS 1000

/*
 * The data path's lock: a program with one thread (as most servers and every benchmark
 * client) cannot race itself, so it skips the atomic. Returns whether it locked.
 */
static inline bool shm_data_lock(atomic_flag *lock)
{
	if (vi_libc_single_threaded())
		return false;
	shm_lock(lock);
	return true;
}

static inline void shm_data_unlock(atomic_flag *lock, bool locked)
{
	if (locked)
		shm_unlock(lock);
}

long long shm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sends SIGPIPE to the calling thread, as the kernel does for a write on a closed stream. */
static void shm_raise_sigpipe(void)
{
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGPIPE);
}

/*
 * Whether the peer is gone: its kernel socket closed while the ring was still open (a
 * crash; a clean close ends the ring first). Rate-limited to one poll(2) per
 * SHM_LIVENESS_MS unless `force`.
 */
bool shm_peer_gone(struct shm_endpoint *e, int fd, bool force)
{
	if (e->peer_gone)
		return true;
	long long now = shm_now_ns();
	if (!force && now < e->next_liveness_ns)
		return false;
	e->next_liveness_ns = now + SHM_LIVENESS_MS * 1000000LL;
	/*
	 * The TCP state, not poll's RDHUP: RDHUP is also what our own SHUT_RD shows. A FIN
	 * or RST from the peer's kernel moves the state past ESTABLISHED / FIN_WAIT.
	 */
	struct tcp_info info;
	socklen_t len = sizeof(info);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 || len < 1)
		return false;
	switch (info.tcpi_state) {
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
	case TCP_CLOSE:
	case TCP_CLOSING:
	case TCP_TIME_WAIT:
		if (!shm_ring_peer_closed(&e->rx)) {
			e->peer_gone = true; /* a FIN without the ring's end: a crash */
		} else if (e->chan_fd >= 0 && e->state == SHM_ACTIVE) {
			/*
			 * The peer shut its writing down (FIN and the ring's end together), and
			 * then? The TCP state cannot tell; the session channel can: every process
			 * of the other side that held the connection held it too.
			 */
			struct pollfd p = { .fd = e->chan_fd, .events = 0 };
			if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
				e->peer_gone = true;
		}
		break;
	default:
		break;
	}
	return e->peer_gone;
}

/* ---- the connector's wait for the listener's answer ---- */

static int shm_flush_to_kernel(struct shm_endpoint *e, int fd);
static void shm_release(struct shm_endpoint *e);

static void shm_fallback_destroy(struct vi_conn *conn)
{
	shm_release(&conn->shm);
}

/*
 * A connector whose listener turned shm down: the kernel socket carries the bytes, and the
 * segment it had mapped (another thread may still be looking at the rings) goes at close.
 */
static const struct vi_endpoint_ops shm_fallback_ops = {
	.name = "tcp",
	.recvmsg = vi_tcp_recvmsg,
	.sendmsg = vi_tcp_sendmsg,
	.shutdown = vi_tcp_shutdown,
	.destroy = shm_fallback_destroy,
};

/*
 * Reads the listener's answer if it came; with `timeout_ms` != 0 waits that long for it.
 * Returns 0 (settled, or still pending after the wait).
 */
static int shm_settle(struct vi_conn *conn, int fd, int timeout_ms)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state != SHM_PENDING)
		return 0;
	if (timeout_ms != 0) {
		struct pollfd p = { .fd = e->door_fd, .events = POLLIN };
		poll(&p, 1, timeout_ms);
	}
	/* Threads reading and writing at once may all get here: one settles, under the lock. */
	shm_lock(&e->settle_lock);
	if (e->state != SHM_PENDING) {
		shm_unlock(&e->settle_lock);
		return 0;
	}
	struct door_message msg;
	size_t nfds = 0;
	int r = door_recv(e->door_fd, &msg, NULL, 0, &nfds);
	int status;
	if (r == -EAGAIN) {
		/*
		 * No answer yet. The listener may never give one: another process sharing the
		 * listening socket (a pre-forked worker) took the request but accepted another
		 * connection; or the acceptor fell back to TCP and already speaks there. Stop
		 * waiting after SHM_ANSWER_MS, or at once when the kernel socket has bytes --
		 * unless the acceptor attached first, which the compare-and-swap tells.
		 */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		bool tcp_bytes = poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
		bool expired = shm_now_ns() - e->pending_since_ns > SHM_ANSWER_MS * 1000000LL;
		uint32_t expected = SHM_HANDSHAKE_PENDING;
		struct shm_segment_control *control = e->base;
		if (!(tcp_bytes || expired) ||
		    !atomic_compare_exchange_strong(&control->handshake, &expected,
						    SHM_HANDSHAKE_ABANDONED)) {
			shm_unlock(&e->settle_lock);
			return 0; /* keep waiting (the acceptor attached: its answer is coming) */
		}
		status = ETIMEDOUT;
	} else {
		status = r < 0 ? -r : msg.type != DOOR_MESSAGE_ACCEPT ? EPROTO
					: -door_accept_check(&e->request, &msg.accept);
	}
	if (status == 0) {
		e->chan_fd = e->door_fd; /* kept: the session channel (fork handoff) */
		e->door_fd = -1;
		e->state = SHM_ACTIVE;
		shm_unlock(&e->settle_lock);
		return 0;
	}
	close(e->door_fd);
	e->door_fd = -1;
	/*
	 * Refused: nothing was read from the ring, so it all goes to the kernel socket, in
	 * order. The writer lock keeps a concurrent send out of the ring meanwhile.
	 */
	shm_lock(&e->tx_lock);
	shm_flush_to_kernel(e, fd);
	if (vi_log_enabled(VI_LOG_CONNS))
		vi_log_line("conns: fd=%d moved to transport=tcp (%s)", fd,
			    status == ETIMEDOUT ? "no answer from the listener within 1 s"
			    : status == ECONNRESET ? "the listener closed its door without an answer"
						   : "the listener refused shm");
	conn->ops = &shm_fallback_ops;
	conn->transport = VI_TRANSPORT_TCP;
	e->state = SHM_FALLBACK;
	shm_unlock(&e->tx_lock);
	shm_unlock(&e->settle_lock);
	/* The mapping stays until close: another thread may still be looking at the rings. */
	return 0;
}

/*
 * Waits for the listener's answer until it came, or SHM_ANSWER_MS passed (then the
 * connection is on TCP), or the peer is gone: for shutdown and fork, which cannot leave it
 * for later.
 */
static void shm_settle_now(struct vi_conn *conn, int fd)
{
	while (conn->shm.state == SHM_PENDING && !shm_peer_gone(&conn->shm, fd, false))
		shm_settle(conn, fd, SHM_LIVENESS_MS);
}

/* Moves what the program wrote into ring 0 before the refusal onto the kernel socket. */
static int shm_flush_to_kernel(struct shm_endpoint *e, int fd)
{
	struct shm_segment_control *control = e->base;
	struct shm_ring unread;
	if (shm_ring_init(&unread, &control->rings[0], (unsigned char *)e->base + SHM_SEGMENT_CONTROL_SIZE,
			  e->tx.capacity, SHM_RING_CONSUMER, &control->reset, NULL) < 0)
		return -EPROTO;
	char buf[16384];
	for (;;) {
		ssize_t n = shm_ring_read(&unread, buf, sizeof(buf), 0);
		if (n <= 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (w < 0 && errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				poll(&p, 1, 1000);
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			off += w;
		}
	}
}

/* ---- data ---- */

/* Whether the connection was reset: by either side's close with unread bytes, or a bad counter. */
static bool shm_is_reset(const struct shm_endpoint *e)
{
	return atomic_load_explicit(e->rx.reset, memory_order_acquire) != 0 || e->rx.broken ||
	       e->tx.broken || shm_ring_peer_aborted(&e->rx);
}

/*
 * A reset is reported once, as ECONNRESET, by whichever call sees it first (a read, a
 * write, or SO_ERROR); afterwards reads see EOF and writes EPIPE, as on a TCP socket after
 * an RST. Returns the error the calling read (`is_write` false) or write should return.
 */
static ssize_t shm_reset_result(struct shm_endpoint *e, bool is_write)
{
	if (!e->reset_reported) {
		e->reset_reported = true;
		return -ECONNRESET;
	}
	return is_write ? -EPIPE : 0;
}

static size_t shm_iov_total(const struct iovec *iov, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

/* Advances an iovec array by `n` bytes, copying into `scratch` (at most 64 entries). */
static int shm_iov_advance(const struct iovec *iov, size_t count, size_t n, struct iovec *scratch,
			   size_t max)
{
	size_t out = 0;
	for (size_t i = 0; i < count && out < max; i++) {
		if (n >= iov[i].iov_len) {
			n -= iov[i].iov_len;
			continue;
		}
		scratch[out].iov_base = (char *)iov[i].iov_base + n;
		scratch[out].iov_len = iov[i].iov_len - n;
		n = 0;
		out++;
	}
	return (int)out;
}

/*
 * The part of msg's iovecs after the first `done` bytes: the caller's own array while nothing
 * was done (no copy on the fast path), else a copy in `scratch` (64 entries). Returns the count.
 */
static int shm_iov_rest(const struct msghdr *msg, size_t done, struct iovec scratch[64],
			const struct iovec **out)
{
	if (done == 0 && msg->msg_iovlen <= 64) {
		*out = msg->msg_iov;
		return (int)msg->msg_iovlen;
	}
	*out = scratch;
	return shm_iov_advance(msg->msg_iov, msg->msg_iovlen, done, scratch, 64);
}

/*
 * Waits until `ring` may be ready, at most SHM_LIVENESS_MS. When the peer's side is held
 * by forked processes, sleeps on this side's eventfd instead of the ring's futex: whichever
 * of them takes the connection over can write the eventfd, while the futex is in a segment
 * it may not map. Returns 0, -ETIMEDOUT or -EINTR.
 */
static int shm_wait(struct vi_conn *conn, int fd, struct shm_ring *ring)
{
	struct shm_endpoint *e = &conn->shm;
	bool consumer = ring == &e->rx;
	if (!shm_handoff_peer_forked(e))
		return consumer ? shm_ring_wait_readable(ring, e->spin_us, SHM_LIVENESS_MS)
				: shm_ring_wait_writable(ring, e->spin_us, SHM_LIVENESS_MS);
	(void)fd;
	if (shm_ring_arm_eventfd(ring) || shm_handoff_asked(e)) {
		shm_ring_disarm_eventfd(ring);
		return 0;
	}
	struct pollfd p = { .fd = e->wake_fd, .events = POLLIN };
	int r = poll(&p, 1, SHM_LIVENESS_MS);
	int err = r < 0 ? errno : 0;
	shm_ring_disarm_eventfd(ring);
	uint64_t count;
	if (read(e->wake_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nobody wrote it. */
	}
	return r < 0 ? (err == EINTR ? -EINTR : 0) : r == 0 ? -ETIMEDOUT : 0;
}

static ssize_t shm_recv_owned(struct vi_conn *conn, int fd, struct msghdr *msg, int flags)
{
	struct shm_endpoint *e = &conn->shm;
	bool dontwait = (flags & MSG_DONTWAIT) != 0;
	if (flags & MSG_OOB)
		return -EINVAL; /* no urgent data on this stream, as TCP without SO_OOBINLINE data */
	if (e->state == SHM_PENDING) {
		while (e->state == SHM_PENDING) {
			shm_settle(conn, fd, dontwait ? 0 : SHM_LIVENESS_MS);
			if (e->state == SHM_PENDING && (dontwait || shm_peer_gone(e, fd, true)))
				return e->peer_gone ? 0 : -EAGAIN;
		}
		if (e->state == SHM_FALLBACK)
			return conn->ops->recvmsg(conn, fd, msg, flags);
	}
	msg->msg_controllen = 0;
	msg->msg_flags = 0;
	if (e->shut_rd)
		dontwait = true; /* Linux still hands over queued bytes after SHUT_RD, then EOF */
	bool peek = (flags & MSG_PEEK) != 0;
	bool waitall = (flags & MSG_WAITALL) != 0 && !peek;
	size_t want = shm_iov_total(msg->msg_iov, msg->msg_iovlen);
	if (want == 0) {
		/* As TCP: 0 once something (or EOF) is there, else EAGAIN or a wait for it. */
		while (!shm_ring_ready(&e->rx) && !shm_peer_gone(e, fd, false)) {
			if (dontwait)
				return -EAGAIN;
			int w = shm_wait(conn, fd, &e->rx);
			if (w == -EINTR)
				return -EINTR;
		}
		return 0;
	}
	size_t done = 0;
	struct iovec scratch[64];
	for (;;) {
		if (__builtin_expect(shm_handoff_asked(e), 0))
			shm_handoff_answer(conn, fd);
		const struct iovec *iov;
		int n = shm_iov_rest(msg, done, scratch, &iov);
		bool locked = shm_data_lock(&e->rx_lock);
		ssize_t r = shm_ring_readv(&e->rx, iov, n, peek ? SHM_RING_PEEK : 0);
		shm_data_unlock(&e->rx_lock, locked);
		if (r > 0) {
			done += (size_t)r;
			e->bytes_in += (size_t)r;
			if (!waitall || done == want)
				return (ssize_t)done;
			continue;
		}
		if (r == 0)
			return (ssize_t)done; /* EOF */
		if (r == -ECONNRESET)
			return done > 0 ? (ssize_t)done : shm_reset_result(e, false);
		if (r != -EAGAIN)
			return done > 0 ? (ssize_t)done : r;
		if (e->shut_rd)
			return (ssize_t)done;
		if (dontwait) {
			/* A non-blocking caller never waits here, so it looks for a dead peer (rate-limited). */
			if (shm_peer_gone(e, fd, false))
				return (ssize_t)done; /* EOF after what the peer had written */
			return done > 0 ? (ssize_t)done : -EAGAIN;
		}
		if (e->peer_gone)
			return (ssize_t)done;
		r = shm_wait(conn, fd, &e->rx);
		if (r == -EINTR)
			return done > 0 ? (ssize_t)done : -EINTR;
		if (r == -ETIMEDOUT && shm_peer_gone(e, fd, true))
			continue; /* read once more: bytes written before the death come first */
	}
}

static ssize_t shm_send_owned(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	struct shm_endpoint *e = &conn->shm;
	bool dontwait = (flags & MSG_DONTWAIT) != 0;
	if (msg->msg_controllen != 0)
		return -EINVAL; /* ancillary data has no meaning on a TCP stream */
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (e->state == SHM_PENDING)
		shm_settle(conn, fd, 0);
	if (e->state == SHM_FALLBACK)
		return conn->ops->sendmsg(conn, fd, msg, flags);
	size_t want = shm_iov_total(msg->msg_iov, msg->msg_iovlen);
	size_t done = 0;
	struct iovec scratch[64];
	for (;;) {
		ssize_t r;
		if (__builtin_expect(shm_handoff_asked(e), 0))
			shm_handoff_answer(conn, fd);
		if (e->shut_wr || e->peer_gone) {
			r = -EPIPE;
		} else {
			const struct iovec *iov;
			int n = shm_iov_rest(msg, done, scratch, &iov);
			bool locked = shm_data_lock(&e->tx_lock);
			r = want == 0 ? 0 : shm_ring_writev(&e->tx, iov, n);
			shm_data_unlock(&e->tx_lock, locked);
		}
		if (r > 0) {
			done += (size_t)r;
			e->bytes_out += (size_t)r;
			if (done == want || dontwait)
				return (ssize_t)done;
			continue;
		}
		if (r == 0)
			return (ssize_t)done;
		if (r == -EAGAIN) {
			if (shm_peer_gone(e, fd, false))
				continue; /* reported as EPIPE above */
			if (dontwait)
				return done > 0 ? (ssize_t)done : -EAGAIN;
			if (e->state == SHM_PENDING)
				shm_settle(conn, fd, SHM_LIVENESS_MS);
			if (e->state == SHM_FALLBACK)
				return -EPROTO; /* cannot happen: refusal flushes before writes go on */
			r = shm_wait(conn, fd, &e->tx);
			if (r == -EINTR)
				return done > 0 ? (ssize_t)done : -EINTR;
			if (r == -ETIMEDOUT)
				shm_peer_gone(e, fd, true);
			continue;
		}
		if (done > 0)
			return (ssize_t)done;
		if (r == -ECONNRESET || (r == -EPIPE && shm_ring_peer_aborted(&e->rx)))
			r = shm_reset_result(e, true);
		if (r == -EPIPE && (flags & MSG_NOSIGNAL) == 0)
			shm_raise_sigpipe();
		return r;
	}
}

/*
 * A data call on a side held by forked processes: in the owner's turn (shm_handoff_enter,
 * which may move the connection here first), never blocking under the record's lock; a
 * blocking call waits between turns, so another holder can take the connection meanwhile.
 */
static ssize_t shm_forked_io(struct vi_conn *conn, int fd, struct msghdr *msg, int flags,
			     bool write)
{
	struct shm_endpoint *e = &conn->shm;
	bool dontwait = (flags & MSG_DONTWAIT) != 0;
	bool all = write ? !dontwait : (flags & (MSG_WAITALL | MSG_PEEK)) == MSG_WAITALL && !dontwait;
	size_t want = shm_iov_total(msg->msg_iov, msg->msg_iovlen), done = 0;
	bool resumed = false;
	int dispossessed = 0;
	struct iovec scratch[64];
	for (;;) {
		if (e->peer_gone && e->epoch != atomic_load(&e->session->epoch)) {
			/* A handoff failed: the peer is gone and our rings are not the session's. */
			ssize_t r = shm_reset_result(e, write);
			if (r == -EPIPE && (flags & MSG_NOSIGNAL) == 0)
				shm_raise_sigpipe();
			return done > 0 ? (ssize_t)done : r;
		}
		int r = shm_handoff_enter(conn, fd, write ? SHM_TRIGGER_WRITE : SHM_TRIGGER_READ,
					  resumed);
		if (r == -EAGAIN) {
			/*
			 * Another process took the connection while we slept. Let it have it for
			 * a while (10 turns of 10 ms), then take it back: two processes blocked
			 * on one socket then move it between them every 100 ms at most, and
			 * neither waits for the other for good (it might be waiting for us).
			 */
			if (dontwait)
				return done > 0 ? (ssize_t)done : -EAGAIN;
			if (++dispossessed >= 10)
				resumed = false;
			continue;
		}
		if (r < 0) {
			/* The peer is gone or refused the move (logged): as TCP after a reset. */
			ssize_t res = shm_reset_result(e, write);
			if (res == -EPIPE && (flags & MSG_NOSIGNAL) == 0)
				shm_raise_sigpipe();
			return done > 0 ? (ssize_t)done : res;
		}
		struct msghdr part = *msg;
		const struct iovec *iov;
		part.msg_iovlen = (size_t)shm_iov_rest(msg, done, scratch, &iov);
		part.msg_iov = (struct iovec *)iov;
		ssize_t n = write ? shm_send_owned(conn, fd, &part, flags | MSG_DONTWAIT)
				  : shm_recv_owned(conn, fd, &part, flags | MSG_DONTWAIT);
		if (!write)
			msg->msg_flags = part.msg_flags;
		shm_handoff_leave(e);
		if (n > 0) {
			done += (size_t)n;
			if (!all || done == want)
				return (ssize_t)done;
		} else if (n == 0 || n != -EAGAIN) {
			return done > 0 ? (ssize_t)done : n;
		} else if (dontwait) {
			return done > 0 ? (ssize_t)done : -EAGAIN;
		}
		if (e->shut_rd && !write)
			return (ssize_t)done;
		int w = shm_wait(conn, fd, write ? &e->tx : &e->rx);
		if (w == -EINTR)
			return done > 0 ? (ssize_t)done : -EINTR;
		resumed = true;
	}
}

static ssize_t shm_recvmsg(struct vi_conn *conn, int fd, struct msghdr *msg, int flags)
{
	if (__builtin_expect(conn->shm.record != NULL, 0))
		return shm_forked_io(conn, fd, msg, flags, false);
	return shm_recv_owned(conn, fd, msg, flags);
}

static ssize_t shm_sendmsg(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	if (__builtin_expect(conn->shm.record != NULL, 0))
		return shm_forked_io(conn, fd, (struct msghdr *)msg, flags, true);
	return shm_send_owned(conn, fd, msg, flags);
}

static int shm_shutdown(struct vi_conn *conn, int fd, int how)
{
	struct shm_endpoint *e = &conn->shm;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	/*
	 * A connector still waiting for the listener's answer waits for it first (at most
	 * SHM_ANSWER_MS): if the answer is no, the ring's bytes go onto the kernel socket, and
	 * they must go before its FIN.
	 */
	shm_settle_now(conn, fd);
	if (e->state == SHM_FALLBACK)
		return conn->ops->shutdown(conn, fd, how);
	/*
	 * The peer must see the end on the rings in use (in a forked side: ours first, which
	 * may need a handoff), and before the kernel socket's FIN: a FIN with the ring still
	 * open is how a crashed peer looks.
	 */
	bool turn = false;
	if (how != SHUT_RD && !e->shut_wr) {
		turn = e->record != NULL && shm_handoff_enter(conn, fd, SHM_TRIGGER_WRITE, false) == 0;
		if (e->record == NULL || turn) {
			shm_lock(&e->tx_lock);
			shm_ring_close(&e->tx);
			shm_unlock(&e->tx_lock);
		}
	}
	/* The kernel socket answers ENOTCONN and friends, and its peer sees the FIN too. */
	int r = vi_libc_result(vi_libc.shutdown(fd, how)) < 0 ? (int)vi_libc_result(-1) : 0;
	if (r == 0 && how != SHUT_WR)
		e->shut_rd = true;
	if (how != SHUT_RD)
		e->shut_wr = true;
	if (turn)
		shm_handoff_leave(e);
	return r;
}

/* ---- readiness ---- */

/*
 * The events the kernel's tcp_poll would give: RDHUP and IN once the receive side is shut
 * (the peer's FIN, our SHUT_RD, a dead peer), HUP once both sides are, ERR while a reset is
 * not yet reported.
 */
/*
 * A process of a forked side that does not own the connection now: its own ring views
 * are as they were at fork (or at its last turn) and must not be used -- a counter that
 * moved on since would look corrupt. It may only look at the shared counters.
 */
static bool shm_observer(const struct shm_endpoint *e)
{
	return __builtin_expect(e->record != NULL, 0) && !shm_handoff_owned(e);
}

/*
 * The poll events an observer sees, from the shared counters alone and without judging
 * them (the owner does): bytes to read or the writer's end, room to write or the reader's.
 * A segment it does not map any more (the connection moved on): both, so that a read or
 * write takes the connection over.
 */
static int shm_poll_observed(const struct shm_endpoint *e, size_t *unread)
{
	*unread = 0;
	if (e->epoch != atomic_load(&e->session->epoch) || e->peer_gone)
		return POLLIN | POLLOUT; /* a read or write takes it over, or sees the end */
	struct shm_segment_control *c = e->base;
	int out = e->side == SHM_SEGMENT_CONNECTOR ? 0 : 1, in = 1 - out;
	if (atomic_load_explicit(&c->reset, memory_order_relaxed) != 0)
		return POLLIN | POLLOUT | POLLHUP | POLLRDHUP | POLLERR;
	uint64_t rh = atomic_load_explicit(&c->rings[in].head, memory_order_acquire);
	uint64_t rt = atomic_load_explicit(&c->rings[in].tail, memory_order_relaxed);
	uint64_t th = atomic_load_explicit(&c->rings[out].head, memory_order_relaxed);
	uint64_t tt = atomic_load_explicit(&c->rings[out].tail, memory_order_acquire);
	bool eof = atomic_load_explicit(&c->rings[in].writer_closed, memory_order_acquire) != 0;
	bool no_reader = atomic_load_explicit(&c->rings[out].reader_closed, memory_order_acquire) != 0;
	int ev = 0;
	if (rh != rt || eof)
		ev |= POLLIN;
	if (eof)
		ev |= POLLRDHUP;
	if (th - tt < e->tx.capacity || no_reader)
		ev |= POLLOUT;
	if (rh - rt <= e->rx.capacity)
		*unread = (size_t)(rh - rt);
	return ev;
}

static int shm_poll(struct vi_conn *conn, int fd)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state == SHM_PENDING)
		shm_settle(conn, fd, 0);
	if (e->state == SHM_FALLBACK)
		return -1;
	if (e->state == SHM_PENDING)
		return shm_ring_ready(&e->tx) ? POLLOUT : 0;
	size_t unread;
	if (shm_observer(e))
		return shm_poll_observed(e, &unread);
	if (__builtin_expect(shm_handoff_asked(e), 0))
		shm_handoff_answer(conn, fd);
	if (shm_is_reset(e))
		return POLLIN | POLLOUT | POLLHUP | POLLRDHUP | (e->reset_reported ? 0 : POLLERR);
	int ev = 0;
	bool rcv_shut = shm_ring_peer_closed(&e->rx) || e->shut_rd || e->peer_gone;
	if (rcv_shut)
		ev |= POLLIN | POLLRDHUP;
	if (shm_ring_ready(&e->rx))
		ev |= POLLIN;
	/* A write to a peer that is gone fails at once (EPIPE): that is ready, as on TCP. */
	if (shm_ring_ready(&e->tx) || e->shut_wr || e->peer_gone)
		ev |= POLLOUT;
	if (rcv_shut && e->shut_wr)
		ev |= POLLHUP;
	return ev;
}

static int shm_arm(struct vi_conn *conn, int fd, int events)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state != SHM_ACTIVE)
		return e->state == SHM_PENDING ? e->door_fd : -1;
	if (shm_observer(e)) {
		/* Announce the sleep on the shared semaphores, then look (as shm_ring_arm_eventfd). */
		size_t unread;
		if (events & POLLIN)
			futex_sem_arm_eventfd(&((struct shm_segment_control *)e->base)
						       ->rings[e->side == SHM_SEGMENT_CONNECTOR ? 1 : 0]
						       .readable);
		if (events & POLLOUT)
			futex_sem_arm_eventfd(&((struct shm_segment_control *)e->base)
						       ->rings[e->side == SHM_SEGMENT_CONNECTOR ? 0 : 1]
						       .writable);
		if ((shm_poll_observed(e, &unread) & (events | POLLHUP | POLLERR | POLLRDHUP)) != 0) {
			shm_ring_disarm_eventfd(&e->rx);
			shm_ring_disarm_eventfd(&e->tx);
			return -1;
		}
		return e->wake_fd;
	}
	if (shm_handoff_asked(e))
		return -1; /* ready: the next shm_poll answers it */
	if ((events & POLLIN) && shm_ring_arm_eventfd(&e->rx)) {
		shm_ring_disarm_eventfd(&e->rx);
		return -1;
	}
	if ((events & POLLOUT) && shm_ring_arm_eventfd(&e->tx)) {
		shm_ring_disarm_eventfd(&e->rx);
		shm_ring_disarm_eventfd(&e->tx);
		return -1;
	}
	return e->wake_fd;
}

static void shm_disarm(struct vi_conn *conn, bool drain)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state != SHM_ACTIVE)
		return;
	shm_ring_disarm_eventfd(&e->rx);
	shm_ring_disarm_eventfd(&e->tx);
	uint64_t count;
	if (drain && read(e->wake_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nobody wrote it. Nothing else can fail on a valid eventfd. */
	}
}

static bool shm_pending(struct vi_conn *conn)
{
	return conn->shm.state == SHM_PENDING;
}

static int shm_liveness(struct vi_conn *conn, int fd, short *events)
{
	struct shm_endpoint *e = &conn->shm;
	/*
	 * Until the peer shuts its writing down, its kernel socket's FIN (RDHUP) is news. After,
	 * RDHUP stays up for good: then the session channel's hang-up says the peer left.
	 */
	if (e->state == SHM_ACTIVE && e->chan_fd >= 0 && !shm_observer(e) &&
	    shm_ring_peer_closed(&e->rx)) {
		*events = 0; /* POLLHUP and POLLERR come unasked */
		return e->chan_fd;
	}
	*events = POLLRDHUP | (e->state == SHM_PENDING ? POLLIN : 0);
	return fd;
}

static void shm_check_peer(struct vi_conn *conn, int fd)
{
	if (conn->shm.state == SHM_ACTIVE)
		shm_peer_gone(&conn->shm, fd, true);
}

static void shm_progress(struct vi_conn *conn, unsigned long long *in, unsigned long long *out)
{
	struct shm_endpoint *e = &conn->shm;
	if (shm_observer(e)) {
		size_t unread;
		shm_poll_observed(e, &unread);
		*in = e->bytes_in + unread;
		*out = e->bytes_out;
		return;
	}
	ssize_t unread_in = e->state == SHM_ACTIVE ? shm_ring_readable(&e->rx) : 0;
	ssize_t unread_out = e->state != SHM_FALLBACK ? shm_ring_readable(&e->tx) : 0;
	*in = e->bytes_in + (unsigned long long)(unread_in > 0 ? unread_in : 0);
	*out = e->bytes_out - (unsigned long long)(unread_out > 0 ? unread_out : 0);
}

static int shm_readable(struct vi_conn *conn, int fd)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state != SHM_ACTIVE)
		return e->state == SHM_PENDING ? 0 : -ENOTTY;
	if (shm_observer(e)) {
		size_t unread;
		shm_poll_observed(e, &unread);
		return unread > INT32_MAX ? INT32_MAX : (int)unread;
	}
	ssize_t n = shm_ring_readable(&e->rx);
	if (n < 0)
		return (int)n;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static int shm_take_error(struct vi_conn *conn, int fd)
{
	struct shm_endpoint *e = &conn->shm;
	if (e->state == SHM_ACTIVE && shm_is_reset(e) && !e->reset_reported) {
		e->reset_reported = true;
		return ECONNRESET;
	}
	return 0;
}

static void shm_release(struct shm_endpoint *e)
{
	if (e->session_base != NULL && e->session_base != e->base)
		munmap(e->session_base, shm_segment_size((size_t)e->tx.capacity));
	if (e->retired_base != NULL)
		munmap(e->retired_base, e->retired_size);
	if (e->base != NULL)
		munmap(e->base, e->size);
	e->base = e->session_base = e->retired_base = NULL;
	e->session = NULL;
	if (e->door_fd >= 0)
		close(e->door_fd);
	if (e->chan_fd >= 0)
		close(e->chan_fd);
	if (e->seg_fd >= 0)
		close(e->seg_fd);
	if (e->wake_fd >= 0)
		close(e->wake_fd);
	if (e->peer_wake_fd >= 0)
		close(e->peer_wake_fd);
	e->door_fd = e->chan_fd = e->wake_fd = e->peer_wake_fd = e->seg_fd = -1;
}

static void shm_destroy(struct vi_conn *conn)
{
	struct shm_endpoint *e = &conn->shm;
	/* A forked side's close (T1) ends the session only in its last holder, on the rings in use. */
	bool others = e->record != NULL && shm_handoff_release(e);
	bool current = e->record == NULL || e->epoch == atomic_load(&e->session->epoch);
	if (e->record != NULL && !others && current && e->base != NULL) {
		/* The last holder, maybe not the last owner: its views as shared memory has them. */
		int wake = e->peer_wake_fd;
		if (shm_segment_attach(e->base, e->size, e->side, &e->tx, &e->rx) == 0)
			e->tx.wake_fd = e->rx.wake_fd = wake;
	}
	if (e->base != NULL && !others && current && e->state != SHM_FALLBACK) {
		/*
		 * Closing with unread bytes resets the connection, as TCP sends RST: the peer
		 * reads what was already sent, then ECONNRESET; its writes fail.
		 */
		if (shm_ring_readable(&e->rx) > 0) {
			shm_ring_abort(&e->tx);
			shm_ring_close(&e->rx);
		} else {
			shm_ring_close(&e->tx);
			shm_ring_close(&e->rx);
		}
		shm_handoff_parting(e);
	}
	shm_release(e);
}

static const struct vi_endpoint_ops shm_ops = {
	.name = "shm",
	.recvmsg = shm_recvmsg,
	.sendmsg = shm_sendmsg,
	.shutdown = shm_shutdown,
	.poll = shm_poll,
	.arm = shm_arm,
	.disarm = shm_disarm,
	.pending = shm_pending,
	.liveness = shm_liveness,
	.check_peer = shm_check_peer,
	.progress = shm_progress,
	.readable = shm_readable,
	.take_error = shm_take_error,
	.destroy = shm_destroy,
};

/* ---- set-up, shared by the connector and the acceptor (shm_setup.c) ---- */

void vi_shm_endpoint_init(struct vi_conn *conn, const struct shm_options *options)
{
	memset(&conn->shm, 0, sizeof(conn->shm));
	struct shm_endpoint *e = &conn->shm;
	conn->ops = &shm_ops;
	conn->transport = VI_TRANSPORT_SHM;
	e->door_fd = e->chan_fd = e->wake_fd = e->peer_wake_fd = e->seg_fd = -1;
	atomic_flag_clear(&e->tx_lock);
	atomic_flag_clear(&e->rx_lock);
	e->spin_us = options->spin_us >= 0 ? options->spin_us : shm_spin_default_us();
}

/* Maps the segment and sets up this side's rings. Returns 0 or -errno. */
int vi_shm_endpoint_map(struct vi_conn *conn, int memfd, size_t size, enum shm_segment_side side,
			bool fresh, size_t ring_size)
{
	struct shm_endpoint *e = &conn->shm;
	int err = 0;
	void *base = memfd_seal_map(memfd, size, &err);
	if (base == MAP_FAILED)
		return err;
	e->base = base;
	e->size = size;
	if (fresh && (err = shm_segment_init(base, size, ring_size)) < 0)
		return err;
	if ((err = shm_segment_attach(base, size, side, &e->tx, &e->rx)) < 0)
		return err;
	e->side = side;
	e->session_base = base;
	e->session = &((struct shm_segment_control *)base)->session;
	e->epoch = 0;
	shm_handoff_watch(e);
	return 0;
}

void vi_shm_endpoint_release(struct vi_conn *conn)
{
	shm_release(&conn->shm);
	conn->ops = NULL;
}

int vi_shm_prepare_fork(struct vi_conn *conn, int fd)
{
	if (conn->ops != &shm_ops)
		return 0;
	/*
	 * A connector still waiting for the listener's answer gets it first (within
	 * SHM_ANSWER_MS, or it moves to TCP): parent and child could not share the wait, since
	 * only one of them would read the answer.
	 */
	shm_settle_now(conn, fd);
	return shm_handoff_prepare_fork(&conn->shm, fd);
}

void vi_shm_after_fork_child(struct vi_conn *conn)
{
	if (conn->ops == &shm_ops && conn->shm.record != NULL)
		shm_handoff_after_fork_child(&conn->shm);
}
