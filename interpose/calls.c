/* The replacement socket functions: each looks its fd up once and either tail-calls libc or dispatches. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <libc.h>
#include <log.h>
#include <transport.h>

#include "interpose_private.h"
#include "sockaddr.h"
#include "stats.h"

struct vi_interpose_hooks interpose_hooks;

static void interpose_watch_forks(void);

static void interpose_log_call(struct vsock *vs, int fd, const char *symbol, size_t len, long r)
{
	if (!vi_log_enabled(VI_LOG_CALLS))
		return;
	if (r < 0)
		vi_log_line("calls: %s fd=%d %s len=%zu -> -1 errno=%ld (%s)", vs->choice.caller, fd,
			    symbol, len, -r, vs->conn.ops->name);
	else
		vi_log_line("calls: %s fd=%d %s len=%zu -> %ld (%s)", vs->choice.caller, fd, symbol,
			    len, r, vs->conn.ops->name);
}

/* ---- data: every read and write form becomes one recvmsg or sendmsg on the endpoint ---- */

static inline int interpose_flags(struct vsock *vs, int flags)
{
	return atomic_load_explicit(&vs->nonblock, memory_order_relaxed) ? flags | MSG_DONTWAIT
									 : flags;
}

static ssize_t conn_recvmsg(struct vsock *vs, int fd, const char *symbol, struct msghdr *msg,
			    int flags)
{
	ssize_t r = vs->conn.ops->recvmsg(&vs->conn, fd, msg, interpose_flags(vs, flags));
	stats_count(vs, fd, r, true, flags);
	interpose_log_call(vs, fd, symbol, msg->msg_iovlen == 1 ? msg->msg_iov[0].iov_len : 0, r);
	return interpose_return(r);
}

static ssize_t conn_sendmsg(struct vsock *vs, int fd, const char *symbol, const struct msghdr *msg,
			    int flags)
{
	ssize_t r = vs->conn.ops->sendmsg(&vs->conn, fd, msg, interpose_flags(vs, flags));
	stats_count(vs, fd, r, false, flags);
	interpose_log_call(vs, fd, symbol, msg->msg_iovlen == 1 ? msg->msg_iov[0].iov_len : 0, r);
	return interpose_return(r);
}

static ssize_t conn_recv(struct vsock *vs, int fd, const char *symbol, void *buf, size_t len,
			 int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	return conn_recvmsg(vs, fd, symbol, &msg, flags);
}

static ssize_t conn_send(struct vsock *vs, int fd, const char *symbol, const void *buf,
			 size_t len, int flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	return conn_sendmsg(vs, fd, symbol, &msg, flags);
}

ssize_t vi_wrap_read(int fd, void *buf, size_t count)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL || count == 0) /* the VFS answers a read of 0 bytes without TCP */
		return vi_libc.read(fd, buf, count);
	return conn_recv(vs, fd, "read", buf, count, 0);
}

ssize_t vi_wrap___read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL || count > buflen || count == 0) /* libc reports an overflow and aborts */
		return vi_libc.__read_chk(fd, buf, count, buflen);
	return conn_recv(vs, fd, "read", buf, count, 0);
}

ssize_t vi_wrap_recv(int fd, void *buf, size_t len, int flags)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.recv(fd, buf, len, flags);
	return conn_recv(vs, fd, "recv", buf, len, flags);
}

ssize_t vi_wrap___recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL || len > buflen)
		return vi_libc.__recv_chk(fd, buf, len, buflen, flags);
	return conn_recv(vs, fd, "recv", buf, len, flags);
}

ssize_t vi_wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
				socklen_t *alen)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.recvfrom(fd, buf, len, flags, addr, alen);
	ssize_t r = conn_recv(vs, fd, "recvfrom", buf, len, flags);
	if (r >= 0 && addr != NULL && alen != NULL)
		*alen = 0; /* a connected stream names no source, as the kernel's TCP does */
	return r;
}

ssize_t vi_wrap___recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
				      struct sockaddr *addr, socklen_t *alen)
{
	if (len > buflen || interpose_stream(fd) == NULL)
		return vi_libc.__recvfrom_chk(fd, buf, len, buflen, flags, addr, alen);
	return vi_wrap_recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t vi_wrap_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.readv(fd, iov, iovcnt);
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return interpose_return(-EINVAL);
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total == 0)
		return 0; /* as read of 0 bytes: the VFS answers without TCP */
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	return conn_recvmsg(vs, fd, "readv", &msg, 0);
}

ssize_t vi_wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.recvmsg(fd, msg, flags);
	msg->msg_namelen = 0;
	return conn_recvmsg(vs, fd, "recvmsg", msg, flags);
}

ssize_t vi_wrap_write(int fd, const void *buf, size_t count)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.write(fd, buf, count);
	return conn_send(vs, fd, "write", buf, count, 0);
}

ssize_t vi_wrap_send(int fd, const void *buf, size_t len, int flags)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.send(fd, buf, len, flags);
	return conn_send(vs, fd, "send", buf, len, flags);
}

ssize_t vi_wrap_sendto(int fd, const void *buf, size_t len, int flags,
			      const struct sockaddr *addr, socklen_t alen)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.sendto(fd, buf, len, flags, addr, alen);
	/* A connected TCP socket ignores the address (Linux does not even check it). */
	return conn_send(vs, fd, "sendto", buf, len, flags);
}

ssize_t vi_wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.writev(fd, iov, iovcnt);
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return interpose_return(-EINVAL);
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	return conn_sendmsg(vs, fd, "writev", &msg, 0);
}

ssize_t vi_wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.sendmsg(fd, msg, flags);
	return conn_sendmsg(vs, fd, "sendmsg", msg, flags);
}

/* sendfile into a virtual socket: read the file, write the stream (nginx serves files so). */
static ssize_t interpose_sendfile(ssize_t (*real)(int, int, off_t *, size_t), int fd, int in_fd,
				  off_t *offset, size_t count)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL || vs->conn.ops->poll == NULL)
		return real(fd, in_fd, offset, count);
	char buf[65536];
	size_t done = 0;
	off_t pos = offset != NULL ? *offset : 0;
	while (done < count) {
		size_t want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		ssize_t n = offset != NULL ? pread(in_fd, buf, want, pos) : read(in_fd, buf, want);
		if (n < 0) {
			if (done > 0)
				break;
			return interpose_return(-errno);
		}
		if (n == 0)
			break;
		ssize_t w = vs->conn.ops->sendmsg(
			&vs->conn, fd,
			&(struct msghdr){ .msg_iov = &(struct iovec){ .iov_base = buf, .iov_len = (size_t)n },
					  .msg_iovlen = 1 },
			interpose_flags(vs, 0));
		stats_count(vs, fd, w, false, 0);
		if (w < 0) {
			if (offset == NULL && done == 0)
				lseek(in_fd, -n, SEEK_CUR);
			if (done > 0)
				break;
			return interpose_return(w);
		}
		if (w < n && offset == NULL)
			lseek(in_fd, w - n, SEEK_CUR); /* give back what the stream did not take */
		done += (size_t)w;
		pos += w;
		if (w < n)
			break;
	}
	if (offset != NULL)
		*offset = pos;
	return (ssize_t)done;
}

ssize_t vi_wrap_sendfile(int fd, int in_fd, off_t *offset, size_t count)
{
	return interpose_sendfile(vi_libc.sendfile, fd, in_fd, offset, count);
}

ssize_t vi_wrap_sendfile64(int fd, int in_fd, off_t *offset, size_t count)
{
	return interpose_sendfile(vi_libc.sendfile64, fd, in_fd, offset, count);
}

int vi_wrap_shutdown(int fd, int how)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs == NULL)
		return vi_libc.shutdown(fd, how);
	int r = vs->conn.ops->shutdown(&vs->conn, fd, how);
	stats_note_shutdown(vs, how, r);
	return (int)interpose_return(r);
}

/* ---- descriptors: close and the dup family carry the virtual socket with the fd ---- */

int vi_wrap_close(int fd)
{
	/* A program that closes every descriptor (a daemon) must not silence the log. */
	if (__builtin_expect(vi_log_owns_fd(fd), 0))
		return 0;
	if (vsock_get(fd) != NULL)
		vsock_forget(fd);
	readiness_forget_epoll(fd);
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
	readiness_forget_epoll(newfd);
}

int vi_wrap_dup(int fd)
{
	int r = vi_libc.dup(fd);
	if (r >= 0 && vsock_get(fd) != NULL)
		interpose_track_dup(fd, r);
	return r;
}

int vi_wrap_dup2(int fd, int newfd)
{
	int r = vi_libc.dup2(fd, newfd);
	if (r >= 0 && fd != newfd)
		interpose_track_dup(fd, newfd);
	return r;
}

int vi_wrap_dup3(int fd, int newfd, int flags)
{
	int r = vi_libc.dup3(fd, newfd, flags);
	if (r >= 0)
		interpose_track_dup(fd, newfd);
	return r;
}

static int interpose_fcntl(int (*real)(int, int, ...), int fd, int cmd, unsigned long arg)
{
	int r = real(fd, cmd, arg);
	if (r < 0)
		return r;
	struct vsock *vs = vsock_get(fd);
	if (vs == NULL)
		return r;
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		interpose_track_dup(fd, r);
	else if (cmd == F_SETFL)
		atomic_store(&vs->nonblock, (arg & O_NONBLOCK) != 0);
	return r;
}

int vi_wrap_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return interpose_fcntl(vi_libc.fcntl, fd, cmd, arg);
}

int vi_wrap_fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return interpose_fcntl(vi_libc.fcntl64, fd, cmd, arg);
}

int vi_wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	struct vsock *vs = vsock_get(fd);
	if (vs == NULL)
		return vi_libc.ioctl(fd, request, arg);
	if (request == FIONREAD && vs->kind == VSOCK_STREAM && vs->conn.ops->readable != NULL) {
		int n = vs->conn.ops->readable(&vs->conn, fd);
		if (n != -ENOTTY) {
			if (n >= 0)
				*(int *)arg = n;
			return (int)interpose_return(n < 0 ? n : 0);
		}
	}
	int r = vi_libc.ioctl(fd, request, arg);
	if (r == 0 && request == FIONBIO)
		atomic_store(&vs->nonblock, *(const int *)arg != 0);
	return r;
}

/* ---- socket state: the kernel socket holds the true answers, but for SO_ERROR ---- */

int vi_wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	struct vsock *vs = interpose_stream(fd);
	if (vs != NULL && level == SOL_SOCKET && name == SO_ERROR && vs->conn.ops->take_error &&
	    value != NULL && len != NULL && *len >= sizeof(int)) {
		int e = vs->conn.ops->take_error(&vs->conn, fd);
		if (e != 0) {
			*(int *)value = e;
			*len = sizeof(int);
			return 0;
		}
	}
	return vi_libc.getsockopt(fd, level, name, value, len);
}

int vi_wrap_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	return vi_libc.setsockopt(fd, level, name, value, len);
}

int vi_wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	return vi_libc.getsockname(fd, addr, len);
}

int vi_wrap_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	return vi_libc.getpeername(fd, addr, len);
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

static bool transport_wants_shm(enum vi_transport t)
{
	return t == VI_TRANSPORT_SHM || t == VI_TRANSPORT_AUTO;
}

static void interpose_log_conn(const struct vi_route_choice *choice, int fd, bool listening,
			       const char *transport, const char *reason)
{
	if (!vi_log_enabled(VI_LOG_CONNS))
		return;
	char local[SOCKADDR_TEXT_MAX] = "?", peer[SOCKADDR_TEXT_MAX] = "?";
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (vi_libc.getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		sockaddr_format((struct sockaddr *)&ss, len, local, sizeof(local));
	len = sizeof(ss);
	if (!listening && vi_libc.getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		sockaddr_format((struct sockaddr *)&ss, len, peer, sizeof(peer));
	const struct vi_route *route = choice->route;
	vi_log_line("conns: %s fd=%d local=%s %s%s transport=%s%s%s%s rule=%s:%u", choice->caller, fd,
		    local, listening ? "listening" : "peer=", listening ? "" : peer, transport,
		    reason ? " (" : "", reason ? reason : "", reason ? ")" : "", route->pos.file,
		    route->pos.line);
}

static void interpose_log_refused(const struct vi_route_choice *choice, int fd,
				  const struct sockaddr *addr, socklen_t len, const char *reason)
{
	if (!vi_log_enabled(VI_LOG_CONNS))
		return;
	char peer[SOCKADDR_TEXT_MAX];
	sockaddr_format(addr, len, peer, sizeof(peer));
	vi_log_line("conns: %s fd=%d peer=%s refused (%s, and fallback=error) rule=%s:%u",
		    choice->caller, fd, peer, reason, choice->route->pos.file, choice->route->pos.line);
}

/*
 * Makes fd a virtual stream socket whose endpoint is already set up in `conn` (a copy is
 * taken). Preserves errno.
 */
static void interpose_adopt_stream(int fd, const struct vi_route_choice *choice,
				   enum vi_proto proto, const struct vi_conn *conn, const char *reason)
{
	int saved = vi_libc_errno();
	interpose_watch_forks();
	struct vsock *vs = vsock_new(VSOCK_STREAM, choice, proto);
	if (vs == NULL) {
		struct vi_conn copy = *conn;
		vi_conn_destroy(&copy);
	} else {
		vs->conn = *conn;
		int fl = vi_libc.fcntl(fd, F_GETFL, 0);
		atomic_store(&vs->nonblock, fl >= 0 && (fl & O_NONBLOCK) != 0);
		stats_publish(vs, fd, conn->ops->name, reason);
		if (vsock_install(fd, vs) == 0)
			interpose_log_conn(choice, fd, false, conn->ops->name, reason);
	}
	vi_libc_set_errno(saved);
}

int vi_wrap_socket(int domain, int type, int protocol)
{
	return vi_libc.socket(domain, type, protocol);
}

int vi_wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	return vi_libc.bind(fd, addr, len);
}

int vi_wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	const void *caller_pc = __builtin_return_address(0);
	int saved = vi_libc_errno();
	enum vi_proto proto = interpose_socket_proto(fd);
	if (proto == VI_PROTO_ANY || addr == NULL || vsock_get(fd) != NULL) {
		/* Not TCP, or again on a routed socket: a non-blocking connect being checked. */
		vi_libc_set_errno(saved);
		return vi_libc.connect(fd, addr, len);
	}
	struct vi_route_choice choice;
	interpose_hooks.route(caller_pc, proto, addr, len, false, &choice);
	vi_libc_set_errno(saved);
	if (!choice_is_routed(&choice))
		return vi_libc.connect(fd, addr, len);

	const struct vi_route *route = choice.route;
	struct vi_conn conn = { 0 };
	char reason[160] = "";
	bool shm = false;
	if (transport_wants_shm(route->transport))
		shm = vi_shm_connect(&conn, fd, addr, len, &interpose_hooks.shm, reason,
				     sizeof(reason)) == 0;
	else if (route->transport == VI_TRANSPORT_VERBS)
		snprintf(reason, sizeof(reason), "verbs not available yet: falling back to tcp");
	vi_libc_set_errno(saved);
	if (!shm && reason[0] != '\0' && route->fallback == VI_FALLBACK_ERROR) {
		interpose_log_refused(&choice, fd, addr, len, reason);
		return (int)interpose_return(-ECONNREFUSED);
	}
	if (!shm)
		vi_tcp_attach(&conn, fd);
	int r = vi_libc.connect(fd, addr, len);
	if (r == 0 || vi_libc_errno() == EINPROGRESS)
		interpose_adopt_stream(fd, &choice, proto, &conn, reason[0] ? reason : NULL);
	else if (shm)
		vi_shm_abort(&conn);
	return r;
}

int vi_wrap_listen(int fd, int backlog)
{
	const void *caller_pc = __builtin_return_address(0);
	int r = vi_libc.listen(fd, backlog);
	if (r < 0 || vsock_get(fd) != NULL)
		return r; /* listen again on a routed listener changes only the backlog */
	int saved = vi_libc_errno();
	enum vi_proto proto = interpose_socket_proto(fd);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (proto != VI_PROTO_ANY && vi_libc.getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		struct vi_route_choice choice;
		interpose_hooks.route(caller_pc, proto, (struct sockaddr *)&ss, len, true, &choice);
		if (choice_is_routed(&choice)) {
			struct vsock *vs = vsock_new(VSOCK_LISTENER, &choice, proto);
			const char *transport = "tcp", *reason = NULL;
			char why[96];
			if (vs != NULL && transport_wants_shm(choice.route->transport)) {
				int err = vi_shm_listen(&vs->listener, fd, &interpose_hooks.shm);
				if (err == 0) {
					transport = "shm";
				} else {
					snprintf(why, sizeof(why), "no door: errno %d", -err);
					reason = why;
				}
			} else if (choice.route->transport == VI_TRANSPORT_VERBS) {
				reason = "verbs not available yet: falling back to tcp";
			}
			if (vs != NULL)
				stats_publish(vs, fd, transport, reason);
			if (vs != NULL && vsock_install(fd, vs) == 0)
				interpose_log_conn(&choice, fd, true, transport, reason);
		}
	}
	vi_libc_set_errno(saved);
	return r;
}

static int interpose_accepted(int listenfd, int fd)
{
	if (fd < 0)
		return fd;
	struct vsock *listener = vsock_get(listenfd);
	if (listener == NULL || listener->kind != VSOCK_LISTENER)
		return fd;
	int saved = vi_libc_errno();
	struct vi_conn conn = { 0 };
	char reason[160] = "";
	if (listener->listener == NULL ||
	    vi_shm_accept(listener->listener, &conn, fd, reason, sizeof(reason)) < 0)
		vi_tcp_attach(&conn, fd);
	interpose_adopt_stream(fd, &listener->choice, listener->proto, &conn,
			       reason[0] ? reason : NULL);
	vi_libc_set_errno(saved);
	return fd;
}

int vi_wrap_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int r = vi_libc.accept(fd, addr, len);
	return vsock_get(fd) != NULL ? interpose_accepted(fd, r) : r;
}

int vi_wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int r = vi_libc.accept4(fd, addr, len, flags);
	return vsock_get(fd) != NULL ? interpose_accepted(fd, r) : r;
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

const char *vi_interpose_describe_fd(int fd)
{
	struct vsock *vs = vsock_get(fd);
	if (vs == NULL)
		return NULL;
	if (vs->kind == VSOCK_STREAM)
		return vs->conn.ops != NULL ? vs->conn.ops->name : NULL;
	return vs->listener != NULL ? "shm" : "tcp"; /* a listener: with a door, or without */
}

static void interpose_prepare_fork(int fd, struct vsock *vs)
{
	if (vs->kind == VSOCK_STREAM)
		vi_shm_prepare_fork(&vs->conn, fd);
}

static void interpose_after_fork_child(int fd, struct vsock *vs)
{
	(void)fd;
	if (vs->kind == VSOCK_STREAM)
		vi_shm_after_fork_child(&vs->conn);
}

/*
 * Run around every fork() -- registered with the program's libc, so forks made by any
 * object, and daemon(), are seen. Before: each same-host connection gets its handoff record,
 * shared by the processes that will hold it. In the child: it is one of them. Nothing moves
 * until a process reads or writes (transport/shm_handoff.h).
 */
static void interpose_before_fork(void)
{
	vsock_for_each(interpose_prepare_fork);
}

static void interpose_in_child(void)
{
	vsock_for_each(interpose_after_fork_child);
}

/* Registers the fork hooks with the program's libc, once, when the first virtual socket is made (the program is running by then). */
static void interpose_watch_forks(void)
{
	static atomic_bool registered;
	if (!atomic_exchange(&registered, true) && vi_libc.register_atfork != NULL)
		vi_libc.register_atfork(interpose_before_fork, NULL, interpose_in_child, NULL);
}

int vi_interpose_init(const struct vi_interpose_hooks *hooks)
{
	interpose_hooks = *hooks;
	vi_transport_handoff_idle = stats_child_segment;
	return vsock_table_init();
}
