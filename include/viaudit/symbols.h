/* The one list of socket functions viaudit rebinds; everything else is generated from it. */
#ifndef VIAUDIT_SYMBOLS_H
#define VIAUDIT_SYMBOLS_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/*
 * VI_SYMBOLS(X) expands X(name, class, return type, (parameters), (arguments)) once per
 * rebound function.
 *
 * class CREATE: calls that make or place a socket (socket, bind, listen, connect).
 *               They are rebound only in the objects the policy's CALLER selects,
 *               because they are where a route is chosen.
 * class FD:     calls that act on an existing descriptor. They are rebound in every
 *               object, because a virtual socket can be handed to any library; on a
 *               descriptor that is not virtual they cost one table lookup. accept and
 *               accept4 are fd calls: the route of an accepted connection was chosen at
 *               listen (by listen's caller), and accept follows the listening socket into
 *               whichever object calls it, so a listener's door is always answered.
 *
 * fcntl and ioctl are variadic in libc; their third argument is taken as one word, which is
 * what every fcntl and ioctl command that matters here passes.
 */
#define VI_SYMBOLS(X)                                                                       \
	X(socket, CREATE, int, (int domain, int type, int protocol), (domain, type, protocol)) \
	X(bind, CREATE, int, (int fd, const struct sockaddr *addr, socklen_t len),             \
	  (fd, addr, len))                                                                      \
	X(listen, CREATE, int, (int fd, int backlog), (fd, backlog))                           \
	X(accept, FD, int, (int fd, struct sockaddr *addr, socklen_t *len),                \
	  (fd, addr, len))                                                                      \
	X(accept4, FD, int, (int fd, struct sockaddr *addr, socklen_t *len, int flags),    \
	  (fd, addr, len, flags))                                                               \
	X(connect, CREATE, int, (int fd, const struct sockaddr *addr, socklen_t len),          \
	  (fd, addr, len))                                                                      \
	X(read, FD, ssize_t, (int fd, void *buf, size_t count), (fd, buf, count))              \
	X(readv, FD, ssize_t, (int fd, const struct iovec *iov, int iovcnt), (fd, iov, iovcnt)) \
	X(write, FD, ssize_t, (int fd, const void *buf, size_t count), (fd, buf, count))       \
	X(writev, FD, ssize_t, (int fd, const struct iovec *iov, int iovcnt),                  \
	  (fd, iov, iovcnt))                                                                    \
	X(send, FD, ssize_t, (int fd, const void *buf, size_t len, int flags),                 \
	  (fd, buf, len, flags))                                                                \
	X(sendto, FD, ssize_t,                                                                  \
	  (int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,        \
	   socklen_t alen),                                                                     \
	  (fd, buf, len, flags, addr, alen))                                                    \
	X(sendmsg, FD, ssize_t, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags)) \
	X(recv, FD, ssize_t, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags)) \
	X(recvfrom, FD, ssize_t,                                                                \
	  (int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen),  \
	  (fd, buf, len, flags, addr, alen))                                                    \
	X(recvmsg, FD, ssize_t, (int fd, struct msghdr *msg, int flags), (fd, msg, flags))     \
	X(shutdown, FD, int, (int fd, int how), (fd, how))                                     \
	X(close, FD, int, (int fd), (fd))                                                      \
	X(dup, FD, int, (int fd), (fd))                                                        \
	X(dup2, FD, int, (int fd, int newfd), (fd, newfd))                                     \
	X(dup3, FD, int, (int fd, int newfd, int flags), (fd, newfd, flags))                   \
	X(fcntl, FD, int, (int fd, int cmd, ...), (fd, cmd, arg))                              \
	X(ioctl, FD, int, (int fd, unsigned long request, ...), (fd, request, arg))            \
	X(getsockopt, FD, int,                                                                  \
	  (int fd, int level, int name, void *value, socklen_t *len),                          \
	  (fd, level, name, value, len))                                                        \
	X(setsockopt, FD, int,                                                                  \
	  (int fd, int level, int name, const void *value, socklen_t len),                     \
	  (fd, level, name, value, len))                                                        \
	X(getsockname, FD, int, (int fd, struct sockaddr *addr, socklen_t *len),               \
	  (fd, addr, len))                                                                      \
	X(getpeername, FD, int, (int fd, struct sockaddr *addr, socklen_t *len),               \
	  (fd, addr, len))                                                                      \
	X(poll, FD, int, (struct pollfd *fds, nfds_t nfds, int timeout), (fds, nfds, timeout)) \
	X(ppoll, FD, int,                                                                       \
	  (struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,                    \
	   const sigset_t *sigmask),                                                            \
	  (fds, nfds, timeout, sigmask))                                                        \
	X(select, FD, int,                                                                      \
	  (int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds, struct timeval *timeout),       \
	  (nfds, rfds, wfds, efds, timeout))                                                    \
	X(pselect, FD, int,                                                                     \
	  (int nfds, fd_set *rfds, fd_set *wfds, fd_set *efds, const struct timespec *timeout, \
	   const sigset_t *sigmask),                                                            \
	  (nfds, rfds, wfds, efds, timeout, sigmask))                                           \
	X(epoll_create, FD, int, (int size), (size))                                           \
	X(epoll_create1, FD, int, (int flags), (flags))                                        \
	X(epoll_ctl, FD, int, (int epfd, int op, int fd, struct epoll_event *event),           \
	  (epfd, op, fd, event))                                                                \
	X(epoll_wait, FD, int,                                                                  \
	  (int epfd, struct epoll_event *events, int maxevents, int timeout),                  \
	  (epfd, events, maxevents, timeout))                                                   \
	X(epoll_pwait, FD, int,                                                                 \
	  (int epfd, struct epoll_event *events, int maxevents, int timeout,                   \
	   const sigset_t *sigmask),                                                            \
	  (epfd, events, maxevents, timeout, sigmask))                                          \
	/* The names programs really import for the calls above: large-file and           \
	 * _FORTIFY_SOURCE builds (Debian builds its packages with both). */                 \
	X(fcntl64, FD, int, (int fd, int cmd, ...), (fd, cmd, arg))                            \
	X(sendfile, FD, ssize_t, (int fd, int in_fd, off_t *offset, size_t count),             \
	  (fd, in_fd, offset, count))                                                           \
	X(sendfile64, FD, ssize_t, (int fd, int in_fd, off_t *offset, size_t count),           \
	  (fd, in_fd, offset, count))                                                           \
	X(__read_chk, FD, ssize_t, (int fd, void *buf, size_t count, size_t buflen),           \
	  (fd, buf, count, buflen))                                                             \
	X(__recv_chk, FD, ssize_t, (int fd, void *buf, size_t len, size_t buflen, int flags),  \
	  (fd, buf, len, buflen, flags))                                                        \
	X(__recvfrom_chk, FD, ssize_t,                                                          \
	  (int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *addr,     \
	   socklen_t *alen),                                                                    \
	  (fd, buf, len, buflen, flags, addr, alen))                                            \
	X(__poll_chk, FD, int, (struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen),  \
	  (fds, nfds, timeout, fdslen))                                                         \
	X(__ppoll_chk, FD, int,                                                                 \
	  (struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,                    \
	   const sigset_t *sigmask, size_t fdslen),                                             \
	  (fds, nfds, timeout, sigmask, fdslen))

/* The symbol classes, as numbers. */
enum vi_symbol_class {
	VI_CLASS_CREATE,
	VI_CLASS_FD,
};

/* One index per rebound symbol, in table order: VI_SYM_socket, VI_SYM_bind, ... */
enum vi_symbol_id {
#define VI_SYMBOL_ENUM(name, class, ret, params, args) VI_SYM_##name,
	VI_SYMBOLS(VI_SYMBOL_ENUM)
#undef VI_SYMBOL_ENUM
	VI_SYM_COUNT
};

/* Name and class of each symbol, indexed by enum vi_symbol_id. */
struct vi_symbol_info {
	const char *name;
	enum vi_symbol_class class;
	const char *prototype; /* "int connect(int fd, const struct sockaddr *addr, ...)" */
};

#define VI_SYMBOL_STR_(x) #x
#define VI_SYMBOL_INFO(name, class, ret, params, args)                                   \
	[VI_SYM_##name] = { #name, VI_CLASS_##class, VI_SYMBOL_STR_(ret) " " #name VI_SYMBOL_STR_(params) },

/* Defines a static table `static const struct vi_symbol_info VAR[VI_SYM_COUNT]`. */
#define VI_SYMBOL_TABLE(var) \
	static const struct vi_symbol_info var[VI_SYM_COUNT] = { VI_SYMBOLS(VI_SYMBOL_INFO) }

#endif
