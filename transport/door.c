/* The door: naming, opening and connecting it, passing messages and descriptors, checking peers. */
#include "door.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * Plain libc calls throughout; see door.h for why that is right here and what changes when
 * interpose/ calls this on the program's behalf (the vi_libc table of transport/libc.h).
 */

_Static_assert(DOOR_NAME_SIZE == sizeof(((struct sockaddr_un *)0)->sun_path), "sun_path");

int door_netns(unsigned long *netns)
{
	struct stat st;

	/*
	 * The namespace is a property of the thread (setns), so thread-self is the exact
	 * answer; /proc/self is the same for a process that never gave threads their own,
	 * and is there on kernels before 3.17.
	 */
	if (stat("/proc/thread-self/ns/net", &st) < 0 && stat("/proc/self/ns/net", &st) < 0)
		return -errno;
	*netns = (unsigned long)st.st_ino;
	return 0;
}

int door_name_address(char *buf, size_t size, const struct door_address *addr,
		      unsigned long netns)
{
	char text[INET6_ADDRSTRLEN];
	char scope[16] = "";
	char name[DOOR_NAME_SIZE + 1];
	int n;

	if (addr->family == AF_INET) {
		if (inet_ntop(AF_INET, addr->addr, text, sizeof text) == NULL)
			return -EINVAL;
		n = snprintf(name, sizeof name, "viaudit/%lu/%s:%u", netns, text,
			     (unsigned)addr->port);
	} else if (addr->family == AF_INET6) {
		if (inet_ntop(AF_INET6, addr->addr, text, sizeof text) == NULL)
			return -EINVAL;
		if (addr->scope_id != 0)
			snprintf(scope, sizeof scope, "%%%u", (unsigned)addr->scope_id);
		n = snprintf(name, sizeof name, "viaudit/%lu/[%s%s]:%u", netns, text, scope,
			     (unsigned)addr->port);
	} else {
		return -EAFNOSUPPORT;
	}
	/* One byte more for the leading NUL that makes the name abstract. */
	if (n < 0 || (size_t)n + 1 > size || (size_t)n + 1 > DOOR_NAME_SIZE)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	memcpy(buf + 1, name, (size_t)n);
	return n + 1;
}

int door_name(char *buf, size_t size, const struct sockaddr *addr, socklen_t len,
	      unsigned long netns)
{
	struct door_address a;
	int r = door_address_from_sockaddr(&a, addr, len);

	if (r < 0)
		return r;
	return door_name_address(buf, size, &a, netns);
}

static bool address_is_wildcard(const struct door_address *a)
{
	static const uint8_t zero[16];

	return memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16) == 0 && a->scope_id == 0;
}

static void address_wildcard(struct door_address *out, int family, uint16_t port)
{
	memset(out, 0, sizeof *out);
	out->family = family;
	out->port = port;
}

size_t door_candidates(const struct door_address *dest,
		       struct door_address out[DOOR_CANDIDATES_MAX])
{
	size_t n = 0;

	out[n++] = *dest;
	if (!address_is_wildcard(dest))
		address_wildcard(&out[n++], dest->family, dest->port);
	if (dest->family == AF_INET)
		address_wildcard(&out[n++], AF_INET6, dest->port);
	return n;
}

bool door_listener_serves(const struct door_address *listening, bool v6only,
			  const struct door_address *dest)
{
	if (listening->port != dest->port)
		return false;
	if (!address_is_wildcard(listening))
		return door_address_equal(listening, dest);
	if (listening->family == AF_INET)
		return dest->family == AF_INET;
	return dest->family == AF_INET6 || !v6only;
}

/* Builds the sockaddr_un of a door for ADDR in this thread's network namespace. */
static int door_sockaddr(struct sockaddr_un *sun, socklen_t *sun_len,
			 const struct door_address *addr)
{
	unsigned long netns;
	int r = door_netns(&netns);

	if (r < 0)
		return r;
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	r = door_name_address(sun->sun_path, sizeof sun->sun_path, addr, netns);
	if (r < 0)
		return r;
	*sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)r);
	return 0;
}

static int door_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

int door_listen(const struct sockaddr *addr, socklen_t len)
{
	struct door_address a;
	struct sockaddr_un sun;
	socklen_t sun_len;
	int fd, r;

	r = door_address_from_sockaddr(&a, addr, len);
	if (r < 0)
		return r;
	if (a.port == 0)
		return -EINVAL;
	r = door_sockaddr(&sun, &sun_len, &a);
	if (r < 0)
		return r;
	fd = door_socket();
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&sun, sun_len) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int door_accept(int listen_fd)
{
	int fd;

	do
		fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int door_connect(const struct sockaddr *addr, socklen_t len)
{
	struct door_address dest, names[DOOR_CANDIDATES_MAX];
	size_t n;
	int fd, r;

	r = door_address_from_sockaddr(&dest, addr, len);
	if (r < 0)
		return r;
	if (dest.port == 0)
		return -EINVAL;
	fd = door_socket();
	if (fd < 0)
		return fd;

	/*
	 * A failed connect leaves an AF_UNIX socket unconnected, so one socket serves every
	 * attempt. Only ECONNREFUSED (no such name) moves on to the next name: any other error
	 * means the door is there but unusable now, and a wildcard door would be the wrong
	 * listener.
	 */
	n = door_candidates(&dest, names);
	r = -ECONNREFUSED;
	for (size_t i = 0; i < n && r == -ECONNREFUSED; i++) {
		struct sockaddr_un sun;
		socklen_t sun_len;

		r = door_sockaddr(&sun, &sun_len, &names[i]);
		if (r < 0)
			break;
		do
			r = connect(fd, (struct sockaddr *)&sun, sun_len);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			r = -errno;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int door_connect_listener(int listen_fd)
{
	struct sockaddr_un sun;
	socklen_t sun_len = sizeof sun;
	int fd, r;

	/* The door's own name, as bound: no list of candidates, so it can only be this door. */
	if (getsockname(listen_fd, (struct sockaddr *)&sun, &sun_len) < 0)
		return -errno;
	if (sun.sun_family != AF_UNIX || sun_len <= offsetof(struct sockaddr_un, sun_path))
		return -EINVAL;
	fd = door_socket();
	if (fd < 0)
		return fd;
	do
		r = connect(fd, (struct sockaddr *)&sun, sun_len);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int door_send(int fd, const struct door_message *msg, const int *fds, size_t nfds)
{
	uint8_t data[DOOR_MESSAGE_SIZE_MAX];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * DOOR_MESSAGE_FDS_MAX)];
	} control;
	struct iovec iov;
	struct msghdr mh;
	long len;
	ssize_t sent;

	len = door_message_encode(msg, data, sizeof data);
	if (len < 0)
		return (int)len;
	if (nfds != door_message_fd_count(msg->type) || (nfds > 0 && fds == NULL))
		return -EINVAL;

	memset(&mh, 0, sizeof mh);
	iov.iov_base = data;
	iov.iov_len = (size_t)len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof control);
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		sent = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	/* A SOCK_SEQPACKET send is all or nothing; anything else is not a door. */
	return sent == len ? 0 : -EPROTO;
}

/* Whether FD is what a memfd looks like: a regular file whose seals can be read. */
static bool fd_is_memfd(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fcntl(fd, F_GET_SEALS) >= 0;
}

/*
 * Whether FD is an eventfd. An eventfd is an anonymous inode, which fstat cannot tell apart
 * from other anonymous inodes; its /proc/self/fd link names the kind ("anon_inode:[eventfd]").
 * Without /proc the answer is no, and the request is refused: the connection stays on TCP.
 */
static bool fd_is_eventfd(int fd)
{
	static const char want[] = "anon_inode:[eventfd]";
	char path[40], link[sizeof want + 1];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof link);
	return n == (ssize_t)sizeof want - 1 && memcmp(link, want, sizeof want - 1) == 0;
}

/* Whether FD is an AF_UNIX SOCK_SEQPACKET socket: a door connection. */
static bool fd_is_seqpacket(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof type;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return false;
	len = sizeof domain;
	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

static void fds_close(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

int door_recv(int fd, struct door_message *msg, int *fds, size_t max_fds, size_t *nfds)
{
	/* One byte more than the largest message, so a longer datagram shows as MSG_TRUNC. */
	uint8_t data[DOOR_MESSAGE_SIZE_MAX + 1];
	/*
	 * Room for one descriptor more than any message carries. The kernel installs the
	 * descriptors that fit and sets MSG_CTRUNC for the rest (which it closes); the ones
	 * installed are closed below.
	 */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (DOOR_MESSAGE_FDS_MAX + 1))];
	} control;
	int got[sizeof control.buf / sizeof(int)];
	size_t ngot = 0;
	struct door_message decoded;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;
	int r;

	memset(&mh, 0, sizeof mh);
	iov.iov_base = data;
	iov.iov_len = sizeof data;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof control.buf;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	/* Take every descriptor first, so that each refusal below can close them all. */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count && ngot < sizeof got / sizeof got[0]; i++)
			memcpy(&got[ngot++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}

	if (n == 0)
		r = -ECONNRESET;
	else if (mh.msg_flags & MSG_TRUNC)
		r = -EBADMSG;
	else if (mh.msg_flags & MSG_CTRUNC)
		r = -EPROTO;
	else
		r = door_message_decode(data, (size_t)n, &decoded);
	if (r == 0 && (ngot != door_message_fd_count(decoded.type) || ngot > max_fds))
		r = -EPROTO;
	if (r == 0 && (decoded.type == DOOR_MESSAGE_REQUEST || decoded.type == DOOR_MESSAGE_FORWARD) &&
	    (!fd_is_memfd(got[DOOR_FD_MEMFD]) || !fd_is_eventfd(got[DOOR_FD_CONNECTOR_WAKE]) ||
	     !fd_is_eventfd(got[DOOR_FD_LISTENER_WAKE])))
		r = -EPROTO;
	if (r == 0 && decoded.type == DOOR_MESSAGE_FORWARD && !fd_is_seqpacket(got[DOOR_FD_CONNECTOR_DOOR]))
		r = -EPROTO;
	if (r == 0 && decoded.type == DOOR_MESSAGE_ATTACH && !fd_is_memfd(got[DOOR_FD_MEMFD]))
		r = -EPROTO;
	if (r < 0) {
		fds_close(got, ngot);
		return r;
	}
	if (ngot > 0)
		memcpy(fds, got, ngot * sizeof(int));
	*nfds = ngot;
	*msg = decoded;
	return 0;
}

int door_peer_allowed(int fd, bool allow_other_uids)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (len != sizeof cred)
		return -EPROTO;
	if (allow_other_uids || cred.uid == geteuid())
		return 0;
	return -EACCES;
}

static long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int door_wait(int fd, short events, int timeout_ms)
{
	long deadline = timeout_ms < 0 ? 0 : monotonic_ms() + timeout_ms;
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		int wait_ms = -1;

		if (timeout_ms >= 0) {
			long left = deadline - monotonic_ms();

			wait_ms = left > 0 ? (int)(left < INT_MAX ? left : INT_MAX) : 0;
		}
		r = poll(&p, 1, wait_ms);
		if (r > 0)
			return (p.revents & POLLNVAL) ? -EBADF : 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int door_token_random(uint8_t token[DOOR_TOKEN_SIZE])
{
	static const uint8_t zero[DOOR_TOKEN_SIZE];
	ssize_t n;

	do {
		n = getrandom(token, DOOR_TOKEN_SIZE, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
	} while (n != DOOR_TOKEN_SIZE || memcmp(token, zero, DOOR_TOKEN_SIZE) == 0);
	return 0;
}
