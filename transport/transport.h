/* Connections and the endpoints that carry their bytes: the interface between interpose/ and transport/. */
#ifndef VI_TRANSPORT_H
#define VI_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <viaudit/policy.h>

#include "shm.h"

struct vi_conn;

/*
 * What an endpoint does with a connection's data. Every function returns >= 0 or -errno.
 * `fd` is the kernel TCP socket the program holds (a virtual socket is always backed by
 * one, so that fd numbers, getpeername, close-on-exec and fallback come for free).
 * `flags` carry MSG_DONTWAIT when the descriptor is non-blocking.
 */
struct vi_endpoint_ops {
	const char *name;
	/* Returns bytes read, 0 at EOF, or -errno. msg_name/msg_control are left to the caller. */
	ssize_t (*recvmsg)(struct vi_conn *conn, int fd, struct msghdr *msg, int flags);
	/* Returns bytes written or -errno. */
	ssize_t (*sendmsg)(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags);
	/* Returns 0 or -errno. */
	int (*shutdown)(struct vi_conn *conn, int fd, int how);
	/*
	 * The poll(2) events ready now (POLLIN, POLLOUT, POLLRDHUP, POLLHUP, POLLERR), or -1
	 * when the kernel socket's own readiness is the truth (NULL means the same).
	 */
	int (*poll)(struct vi_conn *conn, int fd);
	/*
	 * Prepares to sleep in the kernel until `events` may be ready: the peer will write
	 * the returned eventfd. Returns the eventfd, or -1 when ready already (do not sleep).
	 */
	int (*arm)(struct vi_conn *conn, int fd, int events);
	/*
	 * Withdraws arm. `drain`: the eventfd fired and a level-triggered wait (poll) will
	 * look at it again, so read it empty; an edge-triggered one (epoll) need not.
	 */
	void (*disarm)(struct vi_conn *conn, bool drain);
	/*
	 * Whether the endpoint is still being set up (a connector waiting for the listener's
	 * answer): a wait must then wake within 100 ms and also for bytes on the kernel socket.
	 */
	bool (*pending)(struct vi_conn *conn);
	/*
	 * The descriptor to sleep on beside the wake fd to learn that the peer is gone, with
	 * its events in *events; NULL means the kernel socket `fd` with POLLRDHUP. (A kernel
	 * socket whose peer shut its writing down reports RDHUP for good: it cannot tell a
	 * peer that is gone from one that is still reading.)
	 */
	int (*liveness)(struct vi_conn *conn, int fd, short *events);
	/* Looks at the kernel socket for a dead peer now (its RDHUP woke a wait). */
	void (*check_peer)(struct vi_conn *conn, int fd);
	/*
	 * Progress counters for edge-triggered epoll: bytes the peer has ever sent to this
	 * side, and bytes of this side's the peer has ever consumed.
	 */
	void (*progress)(struct vi_conn *conn, unsigned long long *in, unsigned long long *out);
	/* FIONREAD. Returns bytes readable, or -errno (-ENOTTY: ask the kernel). */
	int (*readable)(struct vi_conn *conn, int fd);
	/* SO_ERROR: returns the pending error (> 0) and clears it, or 0. */
	int (*take_error)(struct vi_conn *conn, int fd);
	/* Releases the endpoint's resources (not the fd). */
	void (*destroy)(struct vi_conn *conn);
};

/* A connection (a session): the program's view of one virtual socket's byte streams. */
struct vi_conn {
	const struct vi_endpoint_ops *ops;
	enum vi_transport transport; /* what carries it now */
	uint32_t handoffs;           /* fork handoffs that brought it to this process */
	union {
		struct shm_endpoint shm;
	};
};

/*
 * Makes a connection carried by the kernel's TCP socket `fd` itself (the pass-through
 * endpoint: viaudit keeps the bookkeeping, the kernel moves the bytes). Returns 0 or -errno.
 */
int vi_tcp_attach(struct vi_conn *conn, int fd);

/* The tcp endpoint's data operations, for endpoints that fall back to the kernel socket. */
ssize_t vi_tcp_recvmsg(struct vi_conn *conn, int fd, struct msghdr *msg, int flags);
ssize_t vi_tcp_sendmsg(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags);
int vi_tcp_shutdown(struct vi_conn *conn, int fd, int how);

/*
 * Set by the layer above: work a process taking a connection over after fork would do right
 * after the handoff anyway (its own stats segment), done instead while the handoff waits for
 * the peer's answer. NULL: none.
 */
extern void (*vi_transport_handoff_idle)(void);

/* Releases whatever endpoint carries `conn`. */
void vi_conn_destroy(struct vi_conn *conn);

/*
 * Connector, before the TCP connect: finds the listener's door for `dest`, binds `fd` to
 * its source address, makes and sends the shared memory. On success `conn` is a pending
 * shm connection and 0 is returned; on failure -errno, with `reason` saying why for the
 * log, and nothing has changed for `fd` but maybe its bind (the connection is plain TCP).
 */
int vi_shm_connect(struct vi_conn *conn, int fd, const struct sockaddr *dest, socklen_t len,
		   const struct shm_options *options, char *reason, size_t reason_size);

/* Connector whose TCP connect failed: releases what vi_shm_connect made. */
void vi_shm_abort(struct vi_conn *conn);

/* Listener: opens the door of the routed listening socket `fd`. Returns 0 or -errno. */
int vi_shm_listen(struct shm_listener **out, int fd, const struct shm_options *options);
void vi_shm_listener_close(struct shm_listener *listener);

/*
 * Acceptor: pairs the accepted TCP connection `fd` with its door request, if one came.
 * Returns 0 with `conn` an active shm connection, or -errno with `reason` (plain TCP).
 */
int vi_shm_accept(struct shm_listener *listener, struct vi_conn *conn, int fd, char *reason,
		  size_t reason_size);

/*
 * In the parent before fork(): makes the connection's handoff record (shm_handoff.h), so
 * that parent and child can each take it over by reading or writing. Returns 0 or -errno.
 */
int vi_shm_prepare_fork(struct vi_conn *conn, int fd);

/* In the child after fork(), before fork returns there. */
void vi_shm_after_fork_child(struct vi_conn *conn);

#endif
