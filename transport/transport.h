/* Connections and the endpoints that carry their bytes: the interface between interpose/ and transport/. */
#ifndef VI_TRANSPORT_H
#define VI_TRANSPORT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <viaudit/policy.h>

struct vi_conn;

/*
 * What an endpoint does with a connection's data. Every function returns >= 0 or -errno.
 * `fd` is the kernel TCP socket the program holds (a virtual socket is always backed by
 * one, so that fd numbers, getpeername, close-on-exec and fallback come for free).
 */
struct vi_endpoint_ops {
	const char *name;
	/* Returns bytes read, 0 at EOF, or -errno. */
	ssize_t (*recv)(struct vi_conn *conn, int fd, void *buf, size_t len, int flags);
	/* Returns bytes written or -errno. */
	ssize_t (*send)(struct vi_conn *conn, int fd, const void *buf, size_t len, int flags);
	/* Returns bytes read, 0 at EOF, or -errno. */
	ssize_t (*recvmsg)(struct vi_conn *conn, int fd, struct msghdr *msg, int flags);
	/* Returns bytes written or -errno. */
	ssize_t (*sendmsg)(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags);
	/* Returns 0 or -errno. */
	int (*shutdown)(struct vi_conn *conn, int fd, int how);
	/* Releases the endpoint's resources (not the fd). */
	void (*destroy)(struct vi_conn *conn);
};

/* A connection (a session): the program's view of one virtual socket's byte streams. */
struct vi_conn {
	const struct vi_endpoint_ops *ops;
	enum vi_transport transport; /* what carries it now */
	void *endpoint;              /* the endpoint's own state */
};

/*
 * Makes a connection carried by the kernel's TCP socket `fd` itself (the pass-through
 * endpoint: viaudit keeps the bookkeeping, the kernel moves the bytes). Returns 0 or -errno.
 */
int vi_tcp_attach(struct vi_conn *conn, int fd);

/* Releases whatever endpoint carries `conn`. */
void vi_conn_destroy(struct vi_conn *conn);

#endif
