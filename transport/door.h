/* The door: an abstract AF_UNIX socket per routed listening address, where same-host connectors
 * hand their shared memory to the listener. */
#ifndef VI_TRANSPORT_DOOR_H
#define VI_TRANSPORT_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "door_message.h"

/*
 * The setup of a same-host connection (DESIGN.md, "Same-host transport"), after the Sun door
 * patent: no daemon, only the two programs.
 *
 *   listener                                  connector
 *   listen(tcp) -> door_listen(its address)
 *                                             door_connect(destination)  (no door: plain TCP)
 *                                             door_peer_allowed(door)
 *                                             door_send(REQUEST, memfd + 2 eventfds)
 *                                             connect(tcp)
 *   door_accept -> door_peer_allowed
 *   door_recv(REQUEST)
 *   accept(tcp), pair by the request's source
 *   door_send(ACCEPT)                      ->   door_recv(ACCEPT), door_accept_check
 *
 * Both ends check the other's uid: the abstract namespace has no permissions, so anyone in the
 * network namespace could open a door under a name another user's program will look for, and
 * a connector must not hand its memory to such a squatter.
 *
 * A door is SOCK_SEQPACKET so that one send is one message, and every door descriptor is
 * non-blocking and close-on-exec: a door must never make the program hang, and an exec'd
 * program must not inherit it. Use door_wait to wait for a message with a time limit.
 *
 * The calls here are the module's own libc calls, not the program's. Once this is wired
 * into interpose/, calls made on the program's behalf that can change what the program
 * sees of errno go through the `vi_libc` table (transport/libc.h); these functions only
 * return -errno and never leave errno for the program to read, so plain libc is fine here.
 */

/* Room for a door name: the size of sun_path, the leading NUL included. */
#define DOOR_NAME_SIZE 108u

/* How many door names a connector tries: exact, the family's wildcard, the IPv6 wildcard. */
#define DOOR_CANDIDATES_MAX 3u

/* The network namespace of the calling thread: the inode number of /proc/thread-self/ns/net
 * (/proc/self/ns/net on older kernels). Returns 0, or -errno when /proc cannot tell. */
int door_netns(unsigned long *netns);

/*
 * Writes the abstract name `\0viaudit/<netns>/<addr>:<port>` for a listening or destination
 * address into BUF (not NUL-terminated: abstract names are counted). <addr> is dotted IPv4,
 * or IPv6 text in brackets (with `%<scope id>` inside the brackets for a scoped address); an
 * IPv4-mapped IPv6 address is named as the IPv4 address it maps, because that is the
 * listener the kernel would connect it to. Returns the name's length, the leading NUL
 * included (add it to offsetof(struct sockaddr_un, sun_path)), or -ENAMETOOLONG,
 * -EAFNOSUPPORT, -EINVAL.
 */
int door_name(char *buf, size_t size, const struct sockaddr *addr, socklen_t len,
	      unsigned long netns);

/* The same, from an address already converted. Returns the length or -errno. */
int door_name_address(char *buf, size_t size, const struct door_address *addr,
		      unsigned long netns);

/*
 * The doors a connector to DEST tries, in order: DEST itself, the wildcard of its family
 * (0.0.0.0 or ::), and for an IPv4 destination the IPv6 wildcard too (a dual-stack [::]
 * listener accepts IPv4). Duplicates are left out. Returns how many were written to OUT.
 */
size_t door_candidates(const struct door_address *dest,
		       struct door_address out[DOOR_CANDIDATES_MAX]);

/*
 * Whether a TCP listener bound to LISTENING (with IPV6_V6ONLY set or not) receives a
 * connection to DEST; a listener uses it to refuse a request that reached its door through
 * a wildcard name but whose TCP connection will go elsewhere.
 */
bool door_listener_serves(const struct door_address *listening, bool v6only,
			  const struct door_address *dest);

/*
 * Opens the door of a TCP listening socket bound to ADDR (its real port, not 0: pass what
 * getsockname returns). Returns the door's listening fd (SOCK_SEQPACKET, non-blocking,
 * close-on-exec), or -errno: -EADDRINUSE when that door is open already, -EINVAL for port 0.
 */
int door_listen(const struct sockaddr *addr, socklen_t len);

/* Takes the next connector from a door. Returns its fd (non-blocking, close-on-exec), or
 * -errno (-EAGAIN when none waits). */
int door_accept(int listen_fd);

/*
 * Connects to the door of the listener a TCP connect to ADDR would reach, trying the names
 * of door_candidates in order. Returns the fd (non-blocking, close-on-exec), -ECONNREFUSED
 * when there is no door, or another -errno when a door exists but cannot be used now
 * (-EAGAIN: its backlog is full). Every failure means "use plain TCP".
 */
int door_connect(const struct sockaddr *addr, socklen_t len);

/*
 * Connects a new door connection to the door LISTEN_FD listens on, by the name it is bound
 * to: how a pre-forked worker puts a request it took but does not serve back on the door it
 * shares with the other workers (a FORWARD). Returns the fd (non-blocking, close-on-exec),
 * -EAGAIN when the door's backlog is full, -EINVAL when LISTEN_FD has no name, or -errno.
 */
int door_connect_listener(int listen_fd);

/*
 * Sends MSG with NFDS descriptors (exactly door_message_fd_count(msg->type) of them).
 * Returns 0, -EINVAL for an invalid message or a wrong fd count, or -errno from the socket
 * (-EAGAIN when the door is full, -EPIPE when the peer is gone; never SIGPIPE).
 */
int door_send(int fd, const struct door_message *msg, const int *fds, size_t nfds);

/*
 * Receives one message and the descriptors that came with it (close-on-exec). On success
 * returns 0 with *MSG decoded and FDS[0..*NFDS) owned by the caller: for a REQUEST the
 * memfd (a regular file that supports seals; check its seals and size with
 * memfd_seal_check) and the two eventfds, in the order of DOOR_FD_*.
 * On any failure every received descriptor is closed, and it returns -errno:
 *   -EAGAIN      nothing to read yet;
 *   -ECONNRESET  the peer closed the door (or sent an empty message);
 *   -EBADMSG     the bytes are not a valid message (see door_message_decode);
 *   -EPROTO      the descriptors are wrong: not the number the type carries, more than
 *                MAX_FDS, more than fit (MSG_CTRUNC), or not of the kind expected.
 */
int door_recv(int fd, struct door_message *msg, int *fds, size_t max_fds, size_t *nfds);

/*
 * Whether the process at the other end of a door connection may use it: its uid (from
 * SO_PEERCRED, taken when it connected or listened) must be our effective uid, unless
 * ALLOW_OTHER_UIDS (`set door_peers any`). Returns 0, -EACCES, or -errno.
 */
int door_peer_allowed(int fd, bool allow_other_uids);

/* Waits up to TIMEOUT_MS (negative: no limit) until FD has one of EVENTS (POLLIN, POLLOUT)
 * or an error or hang-up. Returns 0, -ETIMEDOUT, or -errno. */
int door_wait(int fd, short events, int timeout_ms);

/* Fills TOKEN with random bytes for a new session (never all zero). Returns 0 or -errno. */
int door_token_random(uint8_t token[DOOR_TOKEN_SIZE]);

#endif
