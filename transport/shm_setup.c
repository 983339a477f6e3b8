/*
 * Setting up a same-host connection over the door, without a daemon and without a byte in
 * the TCP stream:
 *
 *   connector: finds the listener's door, binds its TCP socket to learn its source
 *              address, makes the sealed memfd (control page + two rings) and two
 *              eventfds, sends REQUEST {source, destination, token, ring size} with them,
 *              then makes the ordinary TCP connect. Its writes go to the ring at once;
 *              the listener's ACCEPT (or refusal) is read on its next call.
 *   listener:  its accept() takes the TCP connection as the kernel gives it, drains the
 *              door, and pairs the connection with the request whose source address is
 *              the connection's peer address. The request is always there by then: it
 *              was queued on the door before the connector's SYN was sent.
 *
 * A refusal (or a listener that never answers before closing the door) leaves the
 * connection on plain TCP: the connector moves what it had written into the kernel socket.
 *
 * Pre-forked workers inherit the listening socket and its door, so the worker whose accept()
 * drains the door may take requests whose connections other workers accept. Once the process
 * has forked, every request a drain takes that is not its own is put back on the door at
 * once (FORWARD), and an acceptor that does not find its request waits, a bounded time,
 * while another process is inside a drain that may hold it (shm_door_shared.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "door.h"
#include "futex_sem.h"
#include "libc.h"
#include "memfd_seal.h"
#include "shm_listener.h"
#include "shm_private.h"
#include "shm_segment.h"
#include "transport.h"

static const char *setup_errno_name(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case EAGAIN: return "EAGAIN";
	case EPROTO: return "EPROTO";
	case EBADMSG: return "EBADMSG";
	case ENOMEM: return "ENOMEM";
	case EMFILE: return "EMFILE";
	case EINVAL: return "EINVAL";
	case ECONNRESET: return "ECONNRESET";
	case EADDRINUSE: return "EADDRINUSE";
	case ENOENT: return "ENOENT";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ETOOMANYREFS: return "ETOOMANYREFS";
	case ENOBUFS: return "ENOBUFS";
	case EPIPE: return "EPIPE";
	default: return "error";
	}
}

/* ---- connector ---- */

/* Binds an unbound socket to the source address the kernel would pick for `dest`. */
static int setup_bind_source(int fd, const struct sockaddr *dest, socklen_t len,
			     struct door_address *source)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	bool bound = (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port != 0) ||
		     (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port != 0);
	if (!bound) {
		/* A connected UDP socket tells which local address routing picks for dest. */
		int probe = socket(dest->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		struct sockaddr_storage local;
		socklen_t ll = sizeof(local);
		int r = connect(probe, dest, len) == 0 &&
				getsockname(probe, (struct sockaddr *)&local, &ll) == 0
			? 0
			: -errno;
		close(probe);
		if (r < 0)
			return r;
		if (local.ss_family == AF_INET)
			((struct sockaddr_in *)&local)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&local)->sin6_port = 0;
		if (vi_libc.bind(fd, (struct sockaddr *)&local, ll) < 0)
			return -vi_libc_errno();
		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
			return -errno;
	}
	return door_address_from_sockaddr(source, (struct sockaddr *)&ss, sl);
}

/*
 * Sends the connector's request with its memfd and eventfds on its door connection, or on a
 * fresh one when the first may have been given up on: when SHM_REQUEST_LATE_MS went by since
 * DOOR_NS (the machine is loaded), and once more when the send finds the connection closed
 * (a drain of a shared door waited SHM_REQUEST_WAIT_MS for it, then closed it). A closed
 * first connection tells whoever took it that no request comes. Returns 0 or -errno.
 */
static int setup_send_request(struct shm_endpoint *e, const struct sockaddr *dest, socklen_t len,
			      bool allow_other_uids, int memfd, long long door_ns)
{
	struct door_message msg = { .type = DOOR_MESSAGE_REQUEST, .request = e->request };
	int fds[3];
	fds[DOOR_FD_MEMFD] = memfd;
	fds[DOOR_FD_CONNECTOR_WAKE] = e->wake_fd;
	fds[DOOR_FD_LISTENER_WAKE] = e->peer_wake_fd;
	bool fresh = shm_now_ns() - door_ns > SHM_REQUEST_LATE_MS * 1000000LL;
	for (int attempt = 0;; attempt++) {
		int err;
		if (fresh) {
			int again = door_connect(dest, len);
			if (again < 0)
				return again;
			if ((err = door_peer_allowed(again, allow_other_uids)) < 0) {
				close(again);
				return err;
			}
			close(e->door_fd);
			e->door_fd = again;
		}
		err = door_send(e->door_fd, &msg, fds, 3);
		if (err == 0 || attempt == 1 || (err != -EPIPE && err != -ECONNRESET))
			return err;
		fresh = true;
	}
}

int vi_shm_connect(struct vi_conn *conn, int fd, const struct sockaddr *dest, socklen_t len,
		   const struct shm_options *options, char *reason, size_t reason_size)
{
	char dest_text[80] = "?";
	struct door_address dest_addr;
	if (door_address_from_sockaddr(&dest_addr, dest, len) < 0) {
		if (reason != NULL)
			snprintf(reason, reason_size, "destination is not an IP address");
		return -EAFNOSUPPORT;
	}
	{
		char host[INET6_ADDRSTRLEN] = "?";
		inet_ntop(dest_addr.family, dest_addr.addr, host, sizeof(host));
		snprintf(dest_text, sizeof(dest_text), dest_addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
			 host, dest_addr.port);
	}
	int door = door_connect(dest, len);
	long long door_ns = shm_now_ns();
	if (door < 0) {
		if (reason != NULL)
			snprintf(reason, reason_size, "no door at %s: peer does not run viaudit",
				 dest_text);
		return door;
	}
	int err = door_peer_allowed(door, options->allow_other_uids);
	if (err < 0) {
		close(door);
		if (reason != NULL)
			snprintf(reason, reason_size, "door at %s belongs to another user", dest_text);
		return err;
	}

	vi_shm_endpoint_init(conn, options);
	struct shm_endpoint *e = &conn->shm;
	e->door_fd = door;
	e->state = SHM_PENDING;
	int memfd = -1;
	ssize_t size = shm_segment_size(options->ring_size);
	const char *step = "segment";
	if (size < 0) {
		err = (int)size;
		goto fail;
	}
	step = "source address";
	if ((err = setup_bind_source(fd, dest, len, &e->request.source)) < 0)
		goto fail;
	step = "memfd";
	if ((memfd = memfd_seal_create("viaudit", (size_t)size)) < 0) {
		err = memfd;
		goto fail;
	}
	if ((err = vi_shm_endpoint_map(conn, memfd, (size_t)size, SHM_SEGMENT_CONNECTOR, true,
				       options->ring_size)) < 0)
		goto fail;
	step = "eventfd";
	e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->peer_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->wake_fd < 0 || e->peer_wake_fd < 0) {
		err = -errno;
		goto fail;
	}
	e->tx.wake_fd = e->rx.wake_fd = e->peer_wake_fd;

	step = "request";
	e->request.destination = dest_addr;
	e->request.ring_size = (uint32_t)options->ring_size;
	if ((err = door_token_random(e->request.token)) < 0)
		goto fail;
	if ((err = setup_send_request(e, dest, len, options->allow_other_uids, memfd, door_ns)) < 0)
		goto fail;
	close(memfd);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	e->pending_since_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	return 0;

fail:
	if (memfd >= 0)
		close(memfd);
	vi_shm_endpoint_release(conn);
	if (reason != NULL)
		snprintf(reason, reason_size, "shm set-up failed at %s: %s", step,
			 setup_errno_name(-err));
	return err;
}

void vi_shm_abort(struct vi_conn *conn)
{
	vi_shm_endpoint_release(conn);
}

/* ---- listener ---- */

int vi_shm_listen(struct shm_listener **out, int fd, const struct shm_options *options)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* The listener state is mmap'd: the module's malloc is not safe across program threads. */
	struct shm_listener *l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l == MAP_FAILED)
		return -errno;
	/* Shared, not private: forked workers that inherit the door must see one board. */
	l->board = mmap(NULL, sizeof(*l->board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	if (l->board == MAP_FAILED) {
		int err = -errno;
		munmap(l, sizeof(*l));
		return err;
	}
	int door = door_listen((struct sockaddr *)&ss, sl);
	if (door < 0) {
		munmap(l->board, sizeof(*l->board));
		munmap(l, sizeof(*l));
		return door;
	}
	l->door_fd = door;
	l->options = *options;
	door_address_from_sockaddr(&l->address, (struct sockaddr *)&ss, sl);
	int v6only = 0;
	socklen_t ol = sizeof(v6only);
	if (ss.ss_family == AF_INET6 &&
	    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0)
		l->v6only = v6only != 0;
	for (size_t i = 0; i < SHM_PENDING_MAX; i++)
		l->pending[i].door_fd = -1;
	l->forks = shm_door_watch_forks();
	l->pid = getpid();
	*out = l;
	return 0;
}

/* Closes this process's copies of P's descriptors, without an answer, and frees its slot. */
void shm_pending_drop(struct shm_listener *l, struct shm_pending *p)
{
	if (p->door_fd < 0)
		return;
	close(p->door_fd);
	if (p->have_request)
		for (int i = 0; i < 3; i++)
			close(p->fds[i]);
	p->door_fd = -1;
	p->have_request = false;
	l->npending--;
}

void vi_shm_listener_close(struct shm_listener *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < SHM_PENDING_MAX; i++)
		shm_pending_drop(l, &l->pending[i]);
	close(l->door_fd);
	munmap(l->board, sizeof(*l->board));
	munmap(l, sizeof(*l));
}

/* Keeps door connection C in a free slot. Returns the slot, or NULL (C closed: refused). */
struct shm_pending *shm_pending_add(struct shm_listener *l, int c)
{
	if (door_peer_allowed(c, l->options.allow_other_uids) < 0 ||
	    l->npending == SHM_PENDING_MAX) {
		close(c); /* the connector reads the closed door as a refusal */
		return NULL;
	}
	for (size_t i = 0; i < SHM_PENDING_MAX; i++) {
		if (l->pending[i].door_fd < 0) {
			l->pending[i] = (struct shm_pending){ .door_fd = c, .since_ns = shm_now_ns() };
			l->npending++;
			return &l->pending[i];
		}
	}
	close(c);
	return NULL;
}

/*
 * When the request whose memfd is MEMFD was made, on the monotonic clock, so that its age
 * crosses FORWARDs with nothing on the wire for it: the connector set the memfd's size just
 * before it sent the request, and the inode's change time says when. The kernel also moves
 * that time when the connector's writes reach a page of its ring not touched before, so
 * this is the connector's last sign of life in the memfd: still a bound, since a ring has
 * a fixed number of pages and a pending connector stops writing once its ring is full.
 */
static long long setup_request_made_ns(int memfd)
{
	struct stat st;
	struct timespec real;
	long long now = shm_now_ns();
	if (fstat(memfd, &st) < 0 || clock_gettime(CLOCK_REALTIME, &real) < 0)
		return now;
	long long age = ((long long)real.tv_sec - st.st_ctim.tv_sec) * 1000000000LL +
			(real.tv_nsec - st.st_ctim.tv_nsec);
	/* A clock stepped back: as new. A wild value: as old as the TTL allows, plus one. */
	if (age < 0)
		age = 0;
	if (age > SHM_PENDING_TTL_NS)
		age = SHM_PENDING_TTL_NS + 1;
	return now - age;
}

/*
 * Reads the message on P's door connection: a connector's REQUEST, or a FORWARD from
 * another process sharing the door (then the connector's door connection, which came with
 * it, replaces the forwarder's in P). Returns 0 when P has its request, -EAGAIN when none
 * came yet, or another -errno when P was dropped (a message that lies, a connector that left:
 * the connector reads the closed door as a refusal).
 */
int shm_pending_read(struct shm_listener *l, struct shm_pending *p)
{
	struct door_message msg;
	int fds[DOOR_MESSAGE_FDS_MAX];
	size_t n = 0;
	int r = door_recv(p->door_fd, &msg, fds, DOOR_MESSAGE_FDS_MAX, &n);
	if (r == -EAGAIN)
		return r;
	if (r == 0 && msg.type == DOOR_MESSAGE_FORWARD &&
	    door_peer_allowed(fds[DOOR_FD_CONNECTOR_DOOR], l->options.allow_other_uids) < 0)
		r = -EACCES;
	else if (r == 0 && msg.type != DOOR_MESSAGE_REQUEST && msg.type != DOOR_MESSAGE_FORWARD)
		r = -EPROTO;
	if (r < 0) {
		for (size_t k = 0; k < n; k++)
			close(fds[k]); /* none when door_recv failed: it closed them itself */
		shm_pending_drop(l, p);
		return r;
	}
	if (msg.type == DOOR_MESSAGE_FORWARD) {
		close(p->door_fd);
		p->door_fd = fds[DOOR_FD_CONNECTOR_DOOR];
		p->since_ns = setup_request_made_ns(fds[DOOR_FD_MEMFD]);
	}
	memcpy(p->fds, fds, sizeof(p->fds));
	p->request = msg.request;
	p->have_request = true;
	return 0;
}

/* Takes every connector waiting on the door and reads the requests that have come. */
static void setup_drain(struct shm_listener *l)
{
	for (;;) {
		int c = door_accept(l->door_fd);
		if (c < 0)
			break;
		shm_pending_add(l, c);
	}
	long long now = shm_now_ns();
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++) {
		struct shm_pending *p = &l->pending[i];
		if (p->door_fd < 0)
			continue;
		if (!p->have_request && shm_pending_read(l, p) < 0 && p->door_fd < 0)
			continue;
		if (now - p->since_ns > SHM_PENDING_TTL_NS)
			shm_pending_drop(l, p);
	}
}

/* Answers P's connector: STATUS 0 accepts, else it is the errno of the refusal. */
void shm_pending_answer(struct shm_pending *p, int status)
{
	struct door_message msg = { .type = DOOR_MESSAGE_ACCEPT };
	memcpy(msg.accept.token, p->request.token, sizeof(msg.accept.token));
	msg.accept.status = status;
	msg.accept.ring_size = status == 0 ? p->request.ring_size : 0;
	door_send(p->door_fd, &msg, NULL, 0);
}

/* The request that PEER's connection made, among those this process holds, or NULL. */
static struct shm_pending *setup_pending_find(struct shm_listener *l,
					      const struct door_address *peer)
{
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		if (l->pending[i].door_fd >= 0 && l->pending[i].have_request &&
		    door_address_equal(&l->pending[i].request.source, peer))
			return &l->pending[i];
	return NULL;
}

int vi_shm_accept(struct shm_listener *l, struct vi_conn *conn, int fd, char *reason,
		  size_t reason_size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct door_address peer;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    door_address_from_sockaddr(&peer, (struct sockaddr *)&ss, sl) < 0) {
		if (reason != NULL)
			snprintf(reason, reason_size, "accepted socket has no peer address");
		return -ENOTCONN;
	}
	struct shm_pending *p;
	if (!shm_door_is_shared(l)) {
		setup_drain(l);
		p = setup_pending_find(l, &peer);
	} else {
		p = shm_door_shared_find(l, &peer);
	}
	if (p == NULL) {
		if (reason != NULL)
			snprintf(reason, reason_size, "no door request from peer: peer does not run viaudit");
		return -ENOENT;
	}

	int err;
	bool answer = true;
	ssize_t size = shm_segment_size(p->request.ring_size);
	const char *step = "segment size";
	vi_shm_endpoint_init(conn, &l->options);
	if (size < 0) {
		err = (int)size;
		goto refuse;
	}
	step = "destination";
	if (!door_listener_serves(&l->address, l->v6only, &p->request.destination)) {
		err = -EPROTO; /* a request for another listener's connection */
		goto refuse;
	}
	step = "memfd seals";
	if ((err = memfd_seal_check(p->fds[DOOR_FD_MEMFD], (size_t)size)) < 0)
		goto refuse;
	step = "segment";
	if ((err = vi_shm_endpoint_map(conn, p->fds[DOOR_FD_MEMFD], (size_t)size,
				       SHM_SEGMENT_ACCEPTOR, false, 0)) < 0)
		goto refuse;
	struct shm_endpoint *e = &conn->shm;
	/* The connector may have stopped waiting (and sent its bytes over TCP): then refuse. */
	step = "handshake (the connector stopped waiting)";
	uint32_t expected = SHM_HANDSHAKE_PENDING;
	struct shm_segment_control *control = e->base;
	if (!atomic_compare_exchange_strong(&control->handshake, &expected,
					    SHM_HANDSHAKE_ATTACHED)) {
		/* Attached already: by another copy of the request (a fork copied it), which answered. */
		answer = expected != SHM_HANDSHAKE_ATTACHED;
		err = -ETIMEDOUT;
		goto refuse;
	}
	/* The peer made these eventfds: make sure reading ours never blocks. */
	step = "eventfds";
	if (fcntl(p->fds[DOOR_FD_LISTENER_WAKE], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(p->fds[DOOR_FD_CONNECTOR_WAKE], F_SETFL, O_NONBLOCK) < 0) {
		err = -errno;
		goto refuse;
	}
	e->wake_fd = p->fds[DOOR_FD_LISTENER_WAKE];
	e->peer_wake_fd = p->fds[DOOR_FD_CONNECTOR_WAKE];
	e->tx.wake_fd = e->rx.wake_fd = e->peer_wake_fd;
	e->state = SHM_ACTIVE;
	e->request = p->request; /* its token is the session's secret */
	close(p->fds[DOOR_FD_MEMFD]);
	p->have_request = false; /* the eventfds now belong to the endpoint */
	shm_pending_answer(p, 0);
	e->chan_fd = p->door_fd; /* the door connection stays: the session channel */
	p->door_fd = -1;
	l->npending--;
	return 0;

refuse:
	vi_shm_endpoint_release(conn);
	if (answer)
		shm_pending_answer(p, -err);
	shm_pending_drop(l, p);
	if (reason != NULL)
		snprintf(reason, reason_size, "door refused: bad %s (%s)", step, setup_errno_name(-err));
	return err;
}
