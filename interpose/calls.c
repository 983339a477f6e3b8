/* The replacement socket functions: each looks its fd up once and either tail-calls libc or dispatches. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include <libc.h>
#include <log.h>
#include <transport.h>

#include "interpose.h"
#include "sockaddr.h"
#include "vsock.h"

/* Every replacement, declared from the one list so a signature that drifts fails to build. */
#define VI_WRAP_DECLARE(name, class, ret, params, args) static ret vi_wrap_##name params;
VI_SYMBOLS(VI_WRAP_DECLARE)
#undef VI_WRAP_DECLARE

static struct vi_interpose_hooks interpose_hooks;

/* The one place a -errno result becomes -1 and the *program's* errno. */
static inline long interpose_return(long r)
{
	if (r < 0) {
		vi_libc_set_errno((int)-r);
		return -1;
	}
	return r;
}

/* The connection behind fd, when fd is a connected virtual socket. */
static inline struct vi_conn *interpose_conn(int fd)
{
	struct vsock *vs = vsock_get(fd);
	if (__builtin_expect(vs == NULL, 1) || vs->kind != VSOCK_STREAM)
		return NULL;
	return &vs->conn;
}

static void interpose_log_call(int fd, const char *symbol, size_t len, long r)
{
	if (!vi_log_enabled(VI_LOG_CALLS))
		return;
	struct vsock *vs = vsock_get(fd);
	if (r < 0)
		vi_log_line("calls: %s fd=%d %s len=%zu -> -1 errno=%ld (%s)",
			    vs ? vs->choice.caller : "?", fd, symbol, len, -r,
			    vs ? vs->conn.ops->name : "?");
	else
		vi_log_line("calls: %s fd=%d %s len=%zu -> %ld (%s)", vs ? vs->choice.caller : "?",
			    fd, symbol, len, r, vs ? vs->conn.ops->name : "?");
}

/* ---- data: read, write, send, recv and their vector and message forms ---- */

static ssize_t conn_recv(struct vi_conn *conn, int fd, const char *symbol, void *buf, size_t len,
			 int flags)
{
	ssize_t r = conn->ops->recv(conn, fd, buf, len, flags);
	interpose_log_call(fd, symbol, len, r);
	return interpose_return(r);
}

static ssize_t conn_send(struct vi_conn *conn, int fd, const char *symbol, const void *buf,
			 size_t len, int flags)
{
	ssize_t r = conn->ops->send(conn, fd, buf, len, flags);
	interpose_log_call(fd, symbol, len, r);
	return interpose_return(r);
}

static ssize_t conn_recvmsg(struct vi_conn *conn, int fd, const char *symbol, struct msghdr *msg,
			    int flags)
{
	ssize_t r = conn->ops->recvmsg(conn, fd, msg, flags);
	interpose_log_call(fd, symbol, (size_t)msg->msg_iovlen, r);
	return interpose_return(r);
}

static ssize_t conn_sendmsg(struct vi_conn *conn, int fd, const char *symbol,
			    const struct msghdr *msg, int flags)
{
	ssize_t r = conn->ops->sendmsg(conn, fd, msg, flags);
	interpose_log_call(fd, symbol, (size_t)msg->msg_iovlen, r);
	return interpose_return(r);
}

static ssize_t vi_wrap_read(int fd, void *buf, size_t count)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.read(fd, buf, count);
	return conn_recv(conn, fd, "read", buf, count, 0);
}

static ssize_t vi_wrap___read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL || count > buflen) /* libc reports the overflow and aborts */
		return vi_libc.__read_chk(fd, buf, count, buflen);
	return conn_recv(conn, fd, "read", buf, count, 0);
}

static ssize_t vi_wrap_recv(int fd, void *buf, size_t len, int flags)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.recv(fd, buf, len, flags);
	return conn_recv(conn, fd, "recv", buf, len, flags);
}

static ssize_t vi_wrap___recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL || len > buflen)
		return vi_libc.__recv_chk(fd, buf, len, buflen, flags);
	return conn_recv(conn, fd, "recv", buf, len, flags);
}

static ssize_t vi_wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
				socklen_t *alen)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.recvfrom(fd, buf, len, flags, addr, alen);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = addr,
		.msg_namelen = addr != NULL && alen != NULL ? *alen : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t r = conn_recvmsg(conn, fd, "recvfrom", &msg, flags);
	if (r >= 0 && addr != NULL && alen != NULL)
		*alen = msg.msg_namelen;
	return r;
}

static ssize_t vi_wrap___recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
				      struct sockaddr *addr, socklen_t *alen)
{
	if (len > buflen || interpose_conn(fd) == NULL)
		return vi_libc.__recvfrom_chk(fd, buf, len, buflen, flags, addr, alen);
	return vi_wrap_recvfrom(fd, buf, len, flags, addr, alen);
}

static ssize_t vi_wrap_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.readv(fd, iov, iovcnt);
	if (iovcnt < 0)
		return interpose_return(-EINVAL);
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	return conn_recvmsg(conn, fd, "readv", &msg, 0);
}

static ssize_t vi_wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.recvmsg(fd, msg, flags);
	return conn_recvmsg(conn, fd, "recvmsg", msg, flags);
}

static ssize_t vi_wrap_write(int fd, const void *buf, size_t count)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.write(fd, buf, count);
	return conn_send(conn, fd, "write", buf, count, 0);
}

static ssize_t vi_wrap_send(int fd, const void *buf, size_t len, int flags)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.send(fd, buf, len, flags);
	return conn_send(conn, fd, "send", buf, len, flags);
}

static ssize_t vi_wrap_sendto(int fd, const void *buf, size_t len, int flags,
			      const struct sockaddr *addr, socklen_t alen)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.sendto(fd, buf, len, flags, addr, alen);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = (void *)addr,
		.msg_namelen = addr != NULL ? alen : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	return conn_sendmsg(conn, fd, "sendto", &msg, flags);
}

static ssize_t vi_wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.writev(fd, iov, iovcnt);
	if (iovcnt < 0)
		return interpose_return(-EINVAL);
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	return conn_sendmsg(conn, fd, "writev", &msg, 0);
}

static ssize_t vi_wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.sendmsg(fd, msg, flags);
	return conn_sendmsg(conn, fd, "sendmsg", msg, flags);
}

static int vi_wrap_shutdown(int fd, int how)
{
	struct vi_conn *conn = interpose_conn(fd);
	if (conn == NULL)
		return vi_libc.shutdown(fd, how);
	return (int)interpose_return(conn->ops->shutdown(conn, fd, how));
}

/* ---- descriptors: close and the dup family carry the virtual socket with the fd ---- */

static int vi_wrap_close(int fd)
{
	/* A program that closes every descriptor (a daemon) must not silence the log. */
	if (__builtin_expect(vi_log_owns_fd(fd), 0))
		return 0;
	if (vsock_get(fd) != NULL)
		vsock_forget(fd);
	return vi_libc.close(fd);
}

/* After a successful dup of `oldfd` to `newfd`: newfd now means what oldfd means. */
static void interpose_track_dup(int oldfd, int newfd)
{
	struct vsock *vs = vsock_get(oldfd);
	if (vs != NULL)
		vsock_install(newfd, vsock_ref(vs));
	else if (vsock_get(newfd) != NULL)
		vsock_forget(newfd);
}

static int vi_wrap_dup(int fd)
{
	int r = vi_libc.dup(fd);
	if (r >= 0 && vsock_get(fd) != NULL)
		interpose_track_dup(fd, r);
	return r;
}

static int vi_wrap_dup2(int fd, int newfd)
{
	int r = vi_libc.dup2(fd, newfd);
	if (r >= 0 && fd != newfd)
		interpose_track_dup(fd, newfd);
	return r;
}

static int vi_wrap_dup3(int fd, int newfd, int flags)
{
	int r = vi_libc.dup3(fd, newfd, flags);
	if (r >= 0)
		interpose_track_dup(fd, newfd);
	return r;
}

static int interpose_fcntl(int (*real)(int, int, ...), int fd, int cmd, unsigned long arg)
{
	int r = real(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && vsock_get(fd) != NULL)
		interpose_track_dup(fd, r);
	return r;
}

static int vi_wrap_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return interpose_fcntl(vi_libc.fcntl, fd, cmd, arg);
}

static int vi_wrap_fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return interpose_fcntl(vi_libc.fcntl64, fd, cmd, arg);
}

static int vi_wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return vi_libc.ioctl(fd, request, arg);
}

/* ---- socket state: the kernel socket under a tcp endpoint holds the true answers ---- */

static int vi_wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	return vi_libc.getsockopt(fd, level, name, value, len);
}

static int vi_wrap_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	return vi_libc.setsockopt(fd, level, name, value, len);
}

static int vi_wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	return vi_libc.getsockname(fd, addr, len);
}

static int vi_wrap_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	return vi_libc.getpeername(fd, addr, len);
}

/*
 * ---- readiness ----
 * A connection on the tcp endpoint is ready exactly when its kernel socket is, so the
 * kernel answers for every fd. Endpoints that move bytes outside the kernel socket add
 * their readiness here (the shared-memory transport's wake eventfds).
 */

static int vi_wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	return vi_libc.poll(fds, nfds, timeout);
}

static int vi_wrap___poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	return vi_libc.__poll_chk(fds, nfds, timeout, fdslen);
}

static int vi_wrap_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			 const sigset_t *sigmask)
{
	return vi_libc.ppoll(fds, nfds, timeout, sigmask);
}

static int vi_wrap___ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			       const sigset_t *sigmask, size_t fdslen)
{
	return vi_libc.__ppoll_chk(fds, nfds, timeout, sigmask, fdslen);
}

static int vi_wrap_select(int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds,
			  struct timeval *timeout)
{
	return vi_libc.select(nfds, rfds, wfds, efds, timeout);
}

static int vi_wrap_pselect(int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds,
			   const struct timespec *timeout, const sigset_t *sigmask)
{
	return vi_libc.pselect(nfds, rfds, wfds, efds, timeout, sigmask);
}

static int vi_wrap_epoll_create(int size)
{
	return vi_libc.epoll_create(size);
}

static int vi_wrap_epoll_create1(int flags)
{
	return vi_libc.epoll_create1(flags);
}

static int vi_wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	return vi_libc.epoll_ctl(epfd, op, fd, event);
}

static int vi_wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	return vi_libc.epoll_wait(epfd, events, maxevents, timeout);
}

static int vi_wrap_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			       const sigset_t *sigmask)
{
	return vi_libc.epoll_pwait(epfd, events, maxevents, timeout, sigmask);
}

/* ---- creation: where a route is chosen ---- */

/* The protocol of a socket as the policy names it, or VI_PROTO_ANY when viaudit leaves it. */
static enum vi_proto interpose_socket_proto(int fd)
{
	int type = 0, domain = 0, protocol = 0;
	socklen_t len = sizeof(int);
	if (vi_libc.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return VI_PROTO_ANY;
	len = sizeof(int);
	if (vi_libc.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return VI_PROTO_ANY;
	len = sizeof(int);
	if (vi_libc.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) < 0)
		return VI_PROTO_ANY;
	if (type != SOCK_STREAM || protocol != IPPROTO_TCP)
		return VI_PROTO_ANY; /* UDP and AF_UNIX stay with the kernel for now */
	if (domain == AF_INET)
		return VI_PROTO_TCP4;
	if (domain == AF_INET6)
		return VI_PROTO_TCP6;
	return VI_PROTO_ANY;
}

static bool choice_is_routed(const struct vi_route_choice *choice)
{
	return choice->route != NULL && choice->route->transport != VI_TRANSPORT_KERNEL;
}

/*
 * Why a route's transport cannot be had in this build, or NULL when it can. Until the
 * same-host and verbs transports exist every accelerated route falls back to tcp.
 */
static const char *interpose_transport_unavailable(enum vi_transport t)
{
	switch (t) {
	case VI_TRANSPORT_SHM:
	case VI_TRANSPORT_AUTO:
		return "shm not available yet: falling back to tcp";
	case VI_TRANSPORT_VERBS:
		return "verbs not available yet: falling back to tcp";
	default:
		return NULL;
	}
}

static void interpose_log_conn(const struct vi_route_choice *choice, int fd, const char *what,
			       const char *reason)
{
	if (!vi_log_enabled(VI_LOG_CONNS))
		return;
	char local[SOCKADDR_TEXT_MAX] = "?", peer[SOCKADDR_TEXT_MAX] = "?";
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (vi_libc.getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		sockaddr_format((struct sockaddr *)&ss, len, local, sizeof(local));
	len = sizeof(ss);
	if (what == NULL && vi_libc.getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		sockaddr_format((struct sockaddr *)&ss, len, peer, sizeof(peer));
	const struct vi_route *route = choice->route;
	if (what != NULL)
		vi_log_line("conns: %s fd=%d local=%s %s transport=%s%s%s%s rule=%s:%u", choice->caller,
			    fd, local, what, reason ? "tcp" : vi_transport_name(route->transport),
			    reason ? " (" : "", reason ? reason : "", reason ? ")" : "",
			    route->pos.file, route->pos.line);
	else
		vi_log_line("conns: %s fd=%d local=%s peer=%s transport=%s%s%s%s rule=%s:%u",
			    choice->caller, fd, local, peer,
			    reason ? "tcp" : vi_transport_name(route->transport), reason ? " (" : "",
			    reason ? reason : "", reason ? ")" : "", route->pos.file, route->pos.line);
}

/* Makes fd a virtual stream socket carried by the tcp endpoint. Preserves errno. */
static void interpose_adopt_stream(int fd, const struct vi_route_choice *choice,
				   enum vi_proto proto)
{
	int saved = vi_libc_errno();
	struct vsock *vs = vsock_new(VSOCK_STREAM, choice, proto);
	if (vs != NULL && vi_tcp_attach(&vs->conn, fd) == 0 && vsock_install(fd, vs) == 0)
		interpose_log_conn(choice, fd, NULL,
				   interpose_transport_unavailable(choice->route->transport));
	vi_libc_set_errno(saved);
}

static int vi_wrap_socket(int domain, int type, int protocol)
{
	return vi_libc.socket(domain, type, protocol);
}

static int vi_wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	return vi_libc.bind(fd, addr, len);
}

static int vi_wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	const void *caller_pc = __builtin_return_address(0);
	int saved = vi_libc_errno();
	enum vi_proto proto = interpose_socket_proto(fd);
	if (proto == VI_PROTO_ANY || addr == NULL) {
		vi_libc_set_errno(saved);
		return vi_libc.connect(fd, addr, len);
	}
	if (interpose_conn(fd) != NULL) {
		/* Again on a connection already routed: a non-blocking connect being checked. */
		vi_libc_set_errno(saved);
		return vi_libc.connect(fd, addr, len);
	}
	struct vi_route_choice choice;
	interpose_hooks.route(caller_pc, proto, addr, len, false, &choice);
	vi_libc_set_errno(saved);
	if (!choice_is_routed(&choice))
		return vi_libc.connect(fd, addr, len);

	const char *unavailable = interpose_transport_unavailable(choice.route->transport);
	if (unavailable != NULL && choice.route->fallback == VI_FALLBACK_ERROR) {
		if (vi_log_enabled(VI_LOG_CONNS)) {
			char peer[SOCKADDR_TEXT_MAX];
			sockaddr_format(addr, len, peer, sizeof(peer));
			vi_log_line("conns: %s fd=%d peer=%s refused (%s, and fallback=error) rule=%s:%u",
				    choice.caller, fd, peer,
				    vi_transport_name(choice.route->transport), choice.route->pos.file,
				    choice.route->pos.line);
		}
		return (int)interpose_return(-ECONNREFUSED);
	}
	int r = vi_libc.connect(fd, addr, len);
	if (r == 0 || vi_libc_errno() == EINPROGRESS)
		interpose_adopt_stream(fd, &choice, proto);
	return r;
}

static int vi_wrap_listen(int fd, int backlog)
{
	const void *caller_pc = __builtin_return_address(0);
	int r = vi_libc.listen(fd, backlog);
	if (r < 0)
		return r;
	int saved = vi_libc_errno();
	enum vi_proto proto = interpose_socket_proto(fd);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (proto != VI_PROTO_ANY && vi_libc.getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		struct vi_route_choice choice;
		interpose_hooks.route(caller_pc, proto, (struct sockaddr *)&ss, len, true, &choice);
		if (choice_is_routed(&choice)) {
			struct vsock *vs = vsock_new(VSOCK_LISTENER, &choice, proto);
			if (vs != NULL && vsock_install(fd, vs) == 0)
				interpose_log_conn(&choice, fd, "listening",
						   interpose_transport_unavailable(
							   choice.route->transport));
		}
	}
	vi_libc_set_errno(saved);
	return r;
}

static int interpose_accepted(int listenfd, int fd)
{
	struct vsock *listener = vsock_get(listenfd);
	if (fd >= 0 && listener != NULL && listener->kind == VSOCK_LISTENER)
		interpose_adopt_stream(fd, &listener->choice, listener->proto);
	return fd;
}

static int vi_wrap_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return interpose_accepted(fd, vi_libc.accept(fd, addr, len));
}

static int vi_wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return interpose_accepted(fd, vi_libc.accept4(fd, addr, len, flags));
}

/* ---- the table the audit layer binds from ---- */

static void *const interpose_functions[VI_SYM_COUNT] = {
#define VI_WRAP_ENTRY(name, class, ret, params, args) [VI_SYM_##name] = (void *)vi_wrap_##name,
	VI_SYMBOLS(VI_WRAP_ENTRY)
#undef VI_WRAP_ENTRY
};

void *vi_interpose_function(enum vi_symbol_id id)
{
	return interpose_functions[id];
}

int vi_interpose_init(const struct vi_interpose_hooks *hooks)
{
	interpose_hooks = *hooks;
	return vsock_table_init();
}
