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
 * while another process is inside a drain that may hold it (see "a shared door" below).
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
#include "shm_segment.h"
#include "transport.h"

void vi_shm_endpoint_init(struct vi_conn *conn, const struct shm_options *options);
int vi_shm_endpoint_map(struct vi_conn *conn, int memfd, size_t size, enum shm_segment_side side,
			bool fresh, size_t ring_size);
void vi_shm_endpoint_release(struct vi_conn *conn);

/* Requests waiting for their TCP connection to be accepted. */
#define SHM_PENDING_MAX 1024
/* A request whose connection has not come after this long is dropped. */
#define SHM_PENDING_TTL_NS (30LL * 1000000000LL)
/*
 * A shared door: how long an acceptor waits at most for its request while another process
 * is inside a drain that may hold it. A drain takes microseconds (at most SHM_REQUEST_WAIT_MS
 * more), so this is reached only on an overloaded machine, where a runnable process can wait
 * a long time for a CPU (seen: over 100 ms with 40 runnable on 2 cores). Giving up costs more
 * (the connector waits up to SHM_ANSWER_MS, 1 s, then moves to TCP); waiting longer than
 * that is useless, hence half of it.
 */
#define SHM_SHARED_WAIT_MS 500
/*
 * A shared door: how long a drain waits for the request of a connector it took off the door
 * before the request was sent (the connector is between its door connect and its send). It
 * cannot keep it: a worker serving a connection does not come back to the door for long, and
 * the acceptor of that connection could not find its request. So it closes it then ...
 */
#define SHM_REQUEST_WAIT_MS 20
/*
 * ... and a connector that took longer than this to get its request ready after its door
 * connect (a loaded machine) connects to the door again to send it, so that the request
 * follows its connection at once.
 */
#define SHM_REQUEST_LATE_MS 5
/* Drains a shared door's board tracks by pid at once (more are counted blind). */
#define SHM_DRAINERS_MAX 32
/* Requests forwarded or refused that a shared door's board remembers (a power of two). */
#define SHM_FORWARD_LOG 64
/* Requests one drain remembers having forwarded (see setup_shared_sort). */
#define SHM_DRAIN_REMEMBERED 16

struct shm_pending {
	int door_fd; /* the connector's door connection (a FORWARD not read yet: the forwarder's);
		      * -1: free slot */
	bool have_request;
	struct door_request request;
	int fds[3]; /* DOOR_FD_MEMFD, DOOR_FD_CONNECTOR_WAKE, DOOR_FD_LISTENER_WAKE */
	long long since_ns; /* when the request was made, as near as is known */
};

/*
 * What the processes sharing a door tell each other: an anonymous shared page mapped when
 * the door is opened, so that every process that inherits the door inherits it too.
 */
struct shm_door_board {
	/* Drains going on: pid << 32 | the drain's number; 0: free. */
	_Atomic uint64_t drainers[SHM_DRAINERS_MAX];
	/* What each holds that others may wait for: an unknown episode, a source's key, or 0. */
	_Atomic uint64_t holding[SHM_DRAINERS_MAX];
	_Atomic uint32_t drains;   /* drains begun, ever: numbers them */
	_Atomic uint32_t crowded;  /* drains going on that found no free slot in drainers */
	_Atomic uint32_t logged; /* requests put back on the door or refused by a drain, ever */
	/* Request N's source (setup_source_key), bit 0 set when it was turned down. */
	_Atomic uint64_t log[SHM_FORWARD_LOG];
	struct futex_sem drain_end; /* acceptors waiting for a drain to end */
};

struct shm_listener {
	int door_fd;
	struct door_address address; /* where the TCP listener is bound */
	bool v6only;
	struct shm_options options;
	unsigned forks;               /* setup_forks when the door was opened */
	pid_t pid;                    /* the process this copy of the table belongs to */
	struct shm_door_board *board; /* shared with every process that has the door */
	size_t npending;
	struct shm_pending pending[SHM_PENDING_MAX];
};

static long long setup_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

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
	bool fresh = setup_now_ns() - door_ns > SHM_REQUEST_LATE_MS * 1000000LL;
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
	long long door_ns = setup_now_ns();
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

/*
 * Forks of this process: the program's libc runs setup_count_fork before each one (in the
 * parent, so the child's copy is counted too). A listener compares it with the count when
 * its door was opened to know that another process may have the door.
 */
static _Atomic unsigned setup_forks;
static atomic_bool setup_forks_counted; /* the hook is registered */

static void setup_count_fork(void)
{
	atomic_fetch_add_explicit(&setup_forks, 1, memory_order_relaxed);
}

static void setup_watch_forks(void)
{
	if (vi_libc.register_atfork == NULL || atomic_exchange(&setup_forks_counted, true))
		return;
	if (vi_libc.register_atfork(setup_count_fork, NULL, NULL, NULL) != 0)
		atomic_store(&setup_forks_counted, false);
}

/*
 * Whether other processes may take connectors off L's door too: a fork since it was opened
 * gave the child the door (the parent cannot tell whether the child keeps it, nor the child
 * whether the parent does). One load on the accept path of a program that never forks.
 * Without the fork hook (a program whose libc was not found) only the child can tell.
 */
static bool setup_door_shared(const struct shm_listener *l)
{
	if (atomic_load_explicit(&setup_forks, memory_order_relaxed) != l->forks)
		return true;
	return !atomic_load_explicit(&setup_forks_counted, memory_order_relaxed) &&
	       getpid() != l->pid;
}

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
	setup_watch_forks();
	l->forks = atomic_load_explicit(&setup_forks, memory_order_relaxed);
	l->pid = getpid();
	*out = l;
	return 0;
}

/* Closes this process's copies of P's descriptors, without an answer, and frees its slot. */
static void setup_pending_drop(struct shm_listener *l, struct shm_pending *p)
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
		setup_pending_drop(l, &l->pending[i]);
	close(l->door_fd);
	munmap(l->board, sizeof(*l->board));
	munmap(l, sizeof(*l));
}

/* Keeps door connection C in a free slot. Returns the slot, or NULL (C closed: refused). */
static struct shm_pending *setup_pending_add(struct shm_listener *l, int c)
{
	if (door_peer_allowed(c, l->options.allow_other_uids) < 0 ||
	    l->npending == SHM_PENDING_MAX) {
		close(c); /* the connector reads the closed door as a refusal */
		return NULL;
	}
	for (size_t i = 0; i < SHM_PENDING_MAX; i++) {
		if (l->pending[i].door_fd < 0) {
			l->pending[i] = (struct shm_pending){ .door_fd = c, .since_ns = setup_now_ns() };
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
	long long now = setup_now_ns();
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
static int setup_pending_read(struct shm_listener *l, struct shm_pending *p)
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
		setup_pending_drop(l, p);
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
		setup_pending_add(l, c);
	}
	long long now = setup_now_ns();
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++) {
		struct shm_pending *p = &l->pending[i];
		if (p->door_fd < 0)
			continue;
		if (!p->have_request && setup_pending_read(l, p) < 0 && p->door_fd < 0)
			continue;
		if (now - p->since_ns > SHM_PENDING_TTL_NS)
			setup_pending_drop(l, p);
	}
}

/* Answers P's connector: STATUS 0 accepts, else it is the errno of the refusal. */
static void setup_answer(struct shm_pending *p, int status)
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

/*
 * ---- a shared door ----
 *
 * Once the process has forked, its door may be drained by others, and a request is not
 * kept where the TCP connection is not: every drain (setup_shared_drain) puts back on the
 * door, at once, each request it took for another connection. It cannot keep them for
 * later: a worker that goes on to serve its connection may not drain again for a long time.
 * A drain also stops as soon as it has its own request, leaving the rest on the door.
 *
 * An acceptor whose request is not on the door knows where it is: the request was sent
 * before the connector's SYN, so it was on the door before accept() returned, and since
 * then only a drain can have taken it, and that drain puts it back before it ends. The
 * board (a page shared by every process with the door) tells the acceptor where to look:
 *
 *   - it lists the drains going on, each with its pid and what it holds that another
 *     acceptor may be waiting for: connections whose requests it has not read yet (an
 *     "unknown episode", odd, numbered from when the first of them left the door until
 *     none is left), or the request it is putting back (its source's key, even);
 *   - it logs the source of each request a drain puts back (or turns down), before the
 *     drain lets go of it.
 *
 * So the acceptor waits while an unknown episode that was going on when its own drain
 * ended goes on, or while a drain is putting its request back, and drains again when the
 * log shows its request put back since its own drain began; when none of these holds, the
 * peer has no request (it does not run viaudit) and the connection stays on TCP at once.
 * An episode or a drain begun after its own drain can only take from the door what another
 * drain put back, which the log tells. The waiter reads the drains first and the log
 * second: a drain that let go of its request in between logged it first. A drain whose
 * process died does not count. Only its own request makes a waiter drain again: two
 * waiters passing a third connection's request to and fro would otherwise keep each other
 * draining.
 *
 * A drain may also take a connector's door connection before the request is on it (the
 * connector is between its door connect and its send). It waits for it a little
 * (SHM_REQUEST_WAIT_MS), then closes it; a connector that slow connects to the door again
 * before it sends (setup_send_request), so that no request is left where nobody looks.
 */

/* A source address as the board names it: a 64-bit hash (FNV-1a), even and never zero. */
static uint64_t setup_source_key(const struct door_address *a)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t bytes[4 + 2 + 4 + 16];
	uint32_t family = (uint32_t)a->family;
	memcpy(bytes, &family, 4);
	memcpy(bytes + 4, &a->port, 2);
	memcpy(bytes + 6, &a->scope_id, 4);
	memcpy(bytes + 10, a->addr, 16);
	for (size_t i = 0; i < sizeof(bytes); i++)
		h = (h ^ bytes[i]) * 0x100000001b3ull;
	return (h | 2) & ~1ull;
}

/* Logs that a drain put back (or, REFUSED, turned down) the request from SOURCE. */
static void setup_board_log(struct shm_door_board *b, const struct door_address *source,
			    bool refused)
{
	uint32_t n = atomic_fetch_add(&b->logged, 1);
	atomic_store(&b->log[n % SHM_FORWARD_LOG], setup_source_key(source) | refused);
}

/*
 * What drains did since BEFORE (the log's count when our drain began) with the request
 * whose source has KEY: -1 turned it down, 1 may have put it back on the door (it is in the
 * log, or the log has been overwritten since), 0 neither.
 */
static int setup_board_news(struct shm_door_board *b, uint32_t before, uint64_t key)
{
	uint32_t n = atomic_load(&b->logged) - before;
	if (n > SHM_FORWARD_LOG)
		return 1;
	int news = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t entry = atomic_load(&b->log[(before + k) % SHM_FORWARD_LOG]);
		if ((entry & ~1ull) == key)
			news = (entry & 1) ? -1 : 1;
	}
	return news;
}

/* Lists this process's drain on the board. Returns its slot, or -1 (counted blind). */
static int setup_board_enter(struct shm_door_board *b, pid_t self)
{
	uint32_t number = atomic_fetch_add(&b->drains, 1);
	uint64_t me = (uint64_t)(uint32_t)self << 32 | number;
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		uint64_t none = 0;
		if (atomic_compare_exchange_strong(&b->drainers[i], &none, me))
			return i;
	}
	atomic_fetch_add(&b->crowded, 1);
	return -1;
}

/* Ends the drain listed in SLOT, and wakes the acceptors waiting for a drain to end. */
static void setup_board_leave(struct shm_door_board *b, int slot)
{
	if (slot >= 0) {
		atomic_store(&b->holding[slot], 0);
		atomic_store(&b->drainers[slot], 0);
	} else {
		atomic_fetch_sub(&b->crowded, 1);
	}
	/* Partner: the fence in futex_sem_prepare() of setup_shared_find's wait. */
	if (futex_sem_waiters(&b->drain_end) & FUTEX_SEM_COUNT_MASK)
		futex_sem_post(&b->drain_end);
}

/* The drains going on now and what they hold, into RUNNING and HOLDING (0: none). */
static void setup_board_running(struct shm_door_board *b, uint64_t running[SHM_DRAINERS_MAX],
				uint64_t holding[SHM_DRAINERS_MAX])
{
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		running[i] = atomic_load(&b->drainers[i]);
		holding[i] = atomic_load(&b->holding[i]);
	}
}

/*
 * Whether one of the drains in RUNNING still goes on in the unknown episode it was in
 * (HOLDING), or holds the request whose source has KEY (a drain counted blind may); a dead
 * process's slot is freed.
 */
static bool setup_board_busy(struct shm_door_board *b, const uint64_t running[SHM_DRAINERS_MAX],
			     const uint64_t holding[SHM_DRAINERS_MAX], uint64_t key)
{
	bool busy = atomic_load(&b->crowded) > 0;
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		uint64_t drain = running[i];
		if (drain == 0 || atomic_load(&b->drainers[i]) != drain)
			continue;
		uint64_t now = atomic_load(&b->holding[i]);
		if (now != key && !((now & 1) && now == holding[i]))
			continue;
		if (kill((pid_t)(drain >> 32), 0) < 0 && errno == ESRCH)
			atomic_compare_exchange_strong(&b->drainers[i], &drain, 0);
		else
			busy = true;
	}
	return busy;
}

/* One drain of a shared door, as it goes. */
struct setup_drain {
	struct shm_door_board *board;
	int slot;                        /* its listing on the board, or -1 */
	bool taking;                     /* taking a connection off the door */
	unsigned unknown;                /* connections held whose request has not come */
	uint64_t shown;                  /* what the board shows it holds */
	uint64_t episodes;               /* unknown episodes so far */
	const struct door_address *peer; /* the accepted connection's peer */
	struct shm_pending *mine;        /* its request, once found */
	bool wrapped;                    /* one it forwarded came back: the door was gone through */
	unsigned nforwarded;             /* the first tokens of the first ones it forwarded */
	uint64_t forwarded[SHM_DRAIN_REMEMBERED];
};

/*
 * Shows on the board what drain D holds: an unknown episode while it takes a connection or
 * holds one without its request, else FORWARDING (a request it puts back) or nothing. An
 * acceptor may be waiting for what it showed before: it is woken when that ends.
 */
static void setup_drain_show(struct setup_drain *d, const struct door_address *forwarding)
{
	if (d->slot < 0)
		return;
	uint64_t holding;
	if (d->taking || d->unknown > 0)
		holding = (d->shown & 1) ? d->shown : (++d->episodes << 1) | 1;
	else
		holding = forwarding != NULL ? setup_source_key(forwarding) : 0;
	if (holding == d->shown)
		return;
	atomic_store(&d->board->holding[d->slot], holding);
	/* Partner: the fence in futex_sem_prepare() of setup_shared_find's wait. */
	if (d->shown != 0 && (futex_sem_waiters(&d->board->drain_end) & FUTEX_SEM_COUNT_MASK))
		futex_sem_post(&d->board->drain_end);
	d->shown = holding;
}

/*
 * Puts P's request back on the door for the other processes that share it, with the
 * connector's door connection as the fourth descriptor, and forgets it here. A request gone
 * stale (past the TTL, or its connector gone) is dropped instead. Returns 1 (forwarded), 0
 * (dropped), or -errno when it could not be sent (P stays: sent again at the next accept).
 */
static int setup_forward(struct shm_listener *l, struct shm_pending *p)
{
	/* The connector sends nothing before its answer: anything to read is its end. */
	struct pollfd gone = { .fd = p->door_fd, .events = POLLIN };
	if (setup_now_ns() - p->since_ns > SHM_PENDING_TTL_NS || poll(&gone, 1, 0) > 0) {
		setup_pending_drop(l, p);
		return 0;
	}
	struct door_message msg = { .type = DOOR_MESSAGE_FORWARD, .request = p->request };
	int fds[DOOR_FORWARD_FDS];
	memcpy(fds, p->fds, sizeof(p->fds));
	fds[DOOR_FD_CONNECTOR_DOOR] = p->door_fd;
	int r = -EPIPE;
	/* A drain that took our connection and saw nothing on it for long closed it: once more. */
	for (int attempt = 0; attempt < 2 && (r == -EPIPE || r == -ECONNRESET); attempt++) {
		int c = door_connect_listener(l->door_fd);
		if (c < 0)
			return c;
		r = door_send(c, &msg, fds, DOOR_FORWARD_FDS);
		/* The message stays queued on the door after this close, descriptors and all. */
		close(c);
	}
	if (r < 0)
		return r;
	setup_board_log(l->board, &p->request.source, false);
	setup_pending_drop(l, p); /* our copies: the message holds its own */
	return 1;
}

/*
 * P in drain D: reads its request if it has none yet (when WAIT, waiting for it until
 * SHM_REQUEST_WAIT_MS after P came off the door), then keeps it as D's own if it is the
 * peer's, else forwards it. A P without its request is counted in D->unknown.
 */
static void setup_shared_sort(struct shm_listener *l, struct shm_pending *p,
			      struct setup_drain *d, bool wait)
{
	if (p->door_fd < 0 || p == d->mine)
		return;
	if (!p->have_request) {
		long long left = p->since_ns + SHM_REQUEST_WAIT_MS * 1000000LL - setup_now_ns();
		if (wait && left > 0)
			door_wait(p->door_fd, POLLIN, (int)(left / 1000000) + 1);
		int r = setup_pending_read(l, p);
		if (r == -EAGAIN && wait) {
			/*
			 * Too late: its connector connects again (SHM_REQUEST_LATE_MS) or fails over
			 * to TCP. Shutting our reading side first makes its send fail from now on,
			 * so a message sent just before is read here, not lost with the close.
			 */
			int carrier = p->door_fd;
			shutdown(carrier, SHUT_RD);
			r = setup_pending_read(l, p);
			if (r == 0 && p->door_fd == carrier) {
				/* A REQUEST on a connection that can no longer carry the session. */
				setup_board_log(l->board, &p->request.source, true);
				setup_answer(p, ETIMEDOUT);
				setup_pending_drop(l, p);
				r = -ETIMEDOUT;
			}
		}
		if (r == -EAGAIN)
			return; /* not WAIT, and its request still has not come: kept, counted */
		d->unknown--;
		if (r < 0) {
			setup_drain_show(d, NULL);
			return; /* dropped */
		}
	}
	if (d->mine == NULL && door_address_equal(&p->request.source, d->peer)) {
		d->mine = p;
		setup_drain_show(d, NULL);
		return;
	}
	/*
	 * The door is first in, first out, and a forward goes back in at its end: meeting again
	 * a request this drain forwarded means everything that was on the door when it went
	 * back (by us, or by a drain that took it after us) has been taken since, by us or by
	 * drains the board shows. Draining on would only pass the same requests round again.
	 */
	uint64_t token;
	memcpy(&token, p->request.token, sizeof(token));
	for (unsigned k = 0; k < d->nforwarded; k++)
		d->wrapped |= d->forwarded[k] == token;
	setup_drain_show(d, &p->request.source);
	if (setup_forward(l, p) > 0 && d->nforwarded < SHM_DRAIN_REMEMBERED)
		d->forwarded[d->nforwarded++] = token;
	setup_drain_show(d, NULL);
}

/*
 * One drain of a shared door: the requests this process holds (a forward that failed, a
 * connector whose request had not come), then connectors off the door until PEER's request
 * comes, the door is empty or gone through once, then a short wait for the requests of
 * connectors taken before they sent them. Returns PEER's request, or NULL.
 */
static struct shm_pending *setup_shared_drain(struct shm_listener *l,
					      const struct door_address *peer)
{
	struct setup_drain d = { .board = l->board, .peer = peer };
	d.slot = setup_board_enter(l->board, l->pid);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		d.unknown += l->pending[i].door_fd >= 0 && !l->pending[i].have_request;
	setup_drain_show(&d, NULL);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		setup_shared_sort(l, &l->pending[i], &d, false);
	/* Bounded as well by a count, should other drains keep taking our first forward. */
	for (size_t taken = 0; d.mine == NULL && !d.wrapped && taken < SHM_PENDING_MAX; taken++) {
		/* Shown before the connection leaves the door: see "a shared door" above. */
		d.taking = true;
		setup_drain_show(&d, NULL);
		int c = door_accept(l->door_fd);
		struct shm_pending *p = c < 0 ? NULL : setup_pending_add(l, c);
		d.unknown += p != NULL;
		d.taking = false;
		if (c < 0)
			break;
		if (p != NULL)
			setup_shared_sort(l, p, &d, false);
	}
	setup_drain_show(&d, NULL);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		if (l->pending[i].door_fd >= 0 && !l->pending[i].have_request)
			setup_shared_sort(l, &l->pending[i], &d, true);
	setup_board_leave(l->board, d.slot);
	return d.mine;
}

/* PEER's request on a shared door: drains, and waits while it may still come back. */
static struct shm_pending *setup_shared_find(struct shm_listener *l,
					     const struct door_address *peer)
{
	pid_t self = getpid();
	if (l->pid != self) {
		/*
		 * A forked child's table is a copy of its parent's, which still holds (and will
		 * answer) those requests: only our copies of the descriptors go.
		 */
		for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
			setup_pending_drop(l, &l->pending[i]);
		l->pid = self;
	}
	struct shm_door_board *b = l->board;
	uint64_t key = setup_source_key(peer);
	long long deadline = setup_now_ns() + SHM_SHARED_WAIT_MS * 1000000LL;
	for (;;) {
		uint32_t before = atomic_load(&b->logged);
		struct shm_pending *p = setup_shared_drain(l, peer);
		if (p != NULL)
			return p;
		uint64_t running[SHM_DRAINERS_MAX], holding[SHM_DRAINERS_MAX];
		setup_board_running(b, running, holding);
		for (;;) {
			uint32_t seq = futex_sem_prepare(&b->drain_end);
			/* Drains first, the log second: see "a shared door" above. */
			bool busy = setup_board_busy(b, running, holding, key);
			int news = setup_board_news(b, before, key);
			long long left = deadline - setup_now_ns();
			if (left <= 0 || news != 0 || !busy) {
				futex_sem_cancel(&b->drain_end);
				if (left > 0 && news > 0)
					break; /* drain again */
				return NULL;
			}
			futex_sem_wait(&b->drain_end.seq, seq, left);
			futex_sem_cancel(&b->drain_end);
		}
	}
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
	if (!setup_door_shared(l)) {
		setup_drain(l);
		p = setup_pending_find(l, &peer);
	} else {
		p = setup_shared_find(l, &peer);
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
	setup_answer(p, 0);
	e->chan_fd = p->door_fd; /* the door connection stays: the session channel */
	p->door_fd = -1;
	l->npending--;
	return 0;

refuse:
	vi_shm_endpoint_release(conn);
	if (answer)
		setup_answer(p, -err);
	setup_pending_drop(l, p);
	if (reason != NULL)
		snprintf(reason, reason_size, "door refused: bad %s (%s)", step, setup_errno_name(-err));
	return err;
}
