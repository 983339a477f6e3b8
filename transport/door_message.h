/* The messages sent over a door, as fixed-size records: encoding, decoding and validation. */
#ifndef VI_TRANSPORT_DOOR_MESSAGE_H
#define VI_TRANSPORT_DOOR_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A door carries four messages (DESIGN.md, "Same-host transport" and "Fork handoff"):
 *
 *   REQUEST  connector -> listener: "I am the TCP connection from SOURCE to DESTINATION that
 *            is about to arrive; here is our shared memory". It carries, with SCM_RIGHTS,
 *            exactly DOOR_REQUEST_FDS descriptors: the sealed memfd, then the wake eventfd
 *            of the connector's reader, then the wake eventfd of the listener's reader.
 *   ACCEPT   listener -> connector: the token echoed, ok or refused (with an errno), and the
 *            ring size the listener will use. It carries no descriptors.
 *   FORWARD  a pre-forked worker -> the door it drained: a REQUEST that worker took but whose
 *            TCP connection another worker accepts, put back for the others. It carries the
 *            request's three descriptors and then the connector's door connection.
 *   ATTACH   the new owner of a connection after fork -> the peer, over the session channel
 *            (the door connection, kept for the session's life): the session token (the
 *            proof), the handoff's epoch and the ring size of the new endpoint, with the new
 *            endpoint's sealed memfd.
 *
 * The wire form is the same on every host that runs both ends (one host): explicit byte
 * offsets, little-endian integers, ports in network order, no padding, every reserved byte
 * zero. A message is valid only if it is exactly the canonical encoding of its decoded
 * form, so decode followed by encode gives back the same bytes (the fuzz target checks it).
 *
 * Everything here is pure computation: no system call, no allocation, no errno.
 */

#define DOOR_MESSAGE_MAGIC 0x52444956u /* "VIDR" in little-endian byte order */
#define DOOR_MESSAGE_VERSION 1u

enum door_message_type {
	DOOR_MESSAGE_REQUEST = 1,
	DOOR_MESSAGE_ACCEPT = 2,
	DOOR_MESSAGE_FORWARD = 3,
	DOOR_MESSAGE_ATTACH = 4,
};

/* Wire sizes: a 16-byte header, then the type's body. */
#define DOOR_HEADER_SIZE 16u
#define DOOR_ADDRESS_SIZE 24u
#define DOOR_TOKEN_SIZE 16u
#define DOOR_REQUEST_SIZE (DOOR_HEADER_SIZE + 2 * DOOR_ADDRESS_SIZE + DOOR_TOKEN_SIZE + 8u)
#define DOOR_ACCEPT_SIZE (DOOR_HEADER_SIZE + DOOR_TOKEN_SIZE + 8u)
#define DOOR_ATTACH_SIZE (DOOR_HEADER_SIZE + DOOR_TOKEN_SIZE + 8u)
#define DOOR_MESSAGE_SIZE_MAX DOOR_REQUEST_SIZE

/* Descriptors that travel with each type, and the most any message carries. */
#define DOOR_REQUEST_FDS 3u
#define DOOR_ACCEPT_FDS 0u
#define DOOR_FORWARD_FDS 4u
#define DOOR_ATTACH_FDS 1u
#define DOOR_MESSAGE_FDS_MAX DOOR_FORWARD_FDS
#define DOOR_FD_MEMFD 0u
#define DOOR_FD_CONNECTOR_WAKE 1u
#define DOOR_FD_LISTENER_WAKE 2u
#define DOOR_FD_CONNECTOR_DOOR 3u /* FORWARD only */

/* Ring size per direction: a power of two in the range the policy's `set ring_size` allows. */
#define DOOR_RING_SIZE_MIN 4096u
#define DOOR_RING_SIZE_MAX (1u << 30)

/*
 * REQUEST flags. Version 1 defines none; a receiver refuses any bit it does not know, so a
 * later version can give bits a meaning without an old listener misreading them.
 */
#define DOOR_REQUEST_FLAGS_KNOWN 0u

/* The largest errno an ACCEPT may carry as its refusal (the kernel's MAX_ERRNO). */
#define DOOR_STATUS_ERRNO_MAX 4095

/*
 * A TCP address: AF_INET or AF_INET6, the port in host order, the address bytes (4 used
 * for AF_INET, the rest zero) and the IPv6 scope id (zero for AF_INET). An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is always held as AF_INET, so that the two ends of one
 * connection name it the same way whether their sockets are IPv4 or dual-stack IPv6.
 */
struct door_address {
	int family;
	uint16_t port;
	uint32_t scope_id;
	uint8_t addr[16];
};

struct door_request {
	struct door_address source;      /* the connector's TCP source address (bound, port != 0) */
	struct door_address destination; /* the address the connector connects to (port != 0) */
	uint8_t token[DOOR_TOKEN_SIZE];  /* random session token, never all zero */
	uint32_t ring_size;              /* bytes per direction the memfd was laid out for */
	uint32_t flags;                  /* DOOR_REQUEST_FLAGS_KNOWN bits only */
};

struct door_accept {
	uint8_t token[DOOR_TOKEN_SIZE]; /* the request's token, echoed */
	int status;                     /* 0 = accepted, else the errno of the refusal (> 0) */
	uint32_t ring_size;             /* accepted: the ring size in use (no larger than the
					 * request's; with shm_segment.h's layout, which the
					 * creator fixes, the request's own); refused: 0 */
};

struct door_attach {
	uint8_t token[DOOR_TOKEN_SIZE]; /* the session's token: only its holders know it */
	uint32_t epoch;                 /* the handoff's number, > 0 (the first endpoint is 0) */
	uint32_t ring_size;             /* bytes per direction of the new endpoint's memfd */
};

struct door_message {
	enum door_message_type type;
	union {
		struct door_request request; /* REQUEST and FORWARD */
		struct door_accept accept;
		struct door_attach attach;
	};
};

/* The wire size of a message of TYPE, or 0 for an unknown type. */
size_t door_message_size(enum door_message_type type);

/* How many descriptors travel with a message of TYPE (0 for an unknown type). */
size_t door_message_fd_count(enum door_message_type type);

/*
 * Checks every field of MSG against the rules above. Returns 0, or -EINVAL naming no field
 * (the caller built a bad message).
 */
int door_message_validate(const struct door_message *msg);

/*
 * Writes the wire form of MSG into BUF. Returns the number of bytes written, -EINVAL when
 * MSG is not valid, or -EMSGSIZE when SIZE is too small.
 */
long door_message_encode(const struct door_message *msg, void *buf, size_t size);

/*
 * Reads one message from the LEN bytes at BUF (exactly one received datagram). Returns 0
 * with OUT filled, or -EBADMSG when the bytes are not exactly a valid message: short or long,
 * bad magic, version or type, a length field that disagrees with LEN or the type, an
 * address family other than AF_INET/AF_INET6, a zero port, non-zero reserved bytes, a ring
 * size that is not a power of two in range, unknown flags, a bad status. OUT is left
 * untouched on failure.
 */
int door_message_decode(const void *buf, size_t len, struct door_message *out);

/*
 * Fills OUT from a socket address (sockaddr_in or sockaddr_in6 of LEN bytes), folding an
 * IPv4-mapped IPv6 address into AF_INET. Returns 0, -EAFNOSUPPORT for another family, or
 * -EINVAL when LEN is too short for the family.
 */
int door_address_from_sockaddr(struct door_address *out, const struct sockaddr *addr,
			       socklen_t len);

/*
 * Writes ADDR as a sockaddr_in or sockaddr_in6 into OUT (SIZE bytes available). Returns the
 * length of the socket address, or -EINVAL (bad family) / -ENOSPC (SIZE too small).
 */
int door_address_to_sockaddr(const struct door_address *addr, struct sockaddr *out,
			     socklen_t size);

/*
 * Checks the ACCEPT that answered REQ: the token must be the request's and the ring size no
 * larger than the one the memfd was laid out for. Returns 0 when the listener accepted,
 * -EPROTO when the answer does not belong to REQ, or -status when the listener refused.
 */
int door_accept_check(const struct door_request *req, const struct door_accept *acc);

/* Whether two addresses are the same family, address, port and scope. */
bool door_address_equal(const struct door_address *a, const struct door_address *b);

#endif
