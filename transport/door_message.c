/* Encoding, decoding and validation of door messages; pure code, so it can be fuzzed. */
#include "door_message.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/*
 * Wire layout (all offsets in bytes, integers little-endian):
 *
 *   header   0 magic u32 | 4 version u16 | 6 type u16 | 8 length u32 | 12 reserved u32
 *   address  0 family u8 (4 or 6) | 1 reserved u8 | 2 port (network order) | 4 scope u32 |
 *            8 address[16]
 *   REQUEST  16 source address | 40 destination address | 64 token[16] | 80 ring_size u32 |
 *            84 flags u32                                                   (88 bytes)
 *   ACCEPT   16 token[16] | 32 status u32 | 36 ring_size u32                (40 bytes)
 *   FORWARD  as REQUEST                                                     (88 bytes)
 *   ATTACH   16 token[16] | 32 epoch u32 | 36 ring_size u32                 (40 bytes)
 */
enum {
	HEADER_MAGIC = 0,
	HEADER_VERSION = 4,
	HEADER_TYPE = 6,
	HEADER_LENGTH = 8,
	HEADER_RESERVED = 12,

	ADDRESS_FAMILY = 0,
	ADDRESS_RESERVED = 1,
	ADDRESS_PORT = 2,
	ADDRESS_SCOPE = 4,
	ADDRESS_BYTES = 8,

	REQUEST_SOURCE = DOOR_HEADER_SIZE,
	REQUEST_DESTINATION = REQUEST_SOURCE + DOOR_ADDRESS_SIZE,
	REQUEST_TOKEN = REQUEST_DESTINATION + DOOR_ADDRESS_SIZE,
	REQUEST_RING_SIZE = REQUEST_TOKEN + DOOR_TOKEN_SIZE,
	REQUEST_FLAGS = REQUEST_RING_SIZE + 4,

	ACCEPT_TOKEN = DOOR_HEADER_SIZE,
	ACCEPT_STATUS = ACCEPT_TOKEN + DOOR_TOKEN_SIZE,
	ACCEPT_RING_SIZE = ACCEPT_STATUS + 4,

	ATTACH_TOKEN = DOOR_HEADER_SIZE,
	ATTACH_EPOCH = ATTACH_TOKEN + DOOR_TOKEN_SIZE,
	ATTACH_RING_SIZE = ATTACH_EPOCH + 4,
};

_Static_assert(REQUEST_FLAGS + 4 == DOOR_REQUEST_SIZE, "REQUEST layout");
_Static_assert(ACCEPT_RING_SIZE + 4 == DOOR_ACCEPT_SIZE, "ACCEPT layout");
_Static_assert(ATTACH_RING_SIZE + 4 == DOOR_ATTACH_SIZE, "ATTACH layout");
_Static_assert(ADDRESS_BYTES + 16 == DOOR_ADDRESS_SIZE, "address layout");

/* Address families on the wire: the IP version, independent of the host's AF_* values. */
enum { WIRE_FAMILY_INET = 4, WIRE_FAMILY_INET6 = 6 };

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool bytes_all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static bool ring_size_valid(uint32_t size)
{
	return size >= DOOR_RING_SIZE_MIN && size <= DOOR_RING_SIZE_MAX && (size & (size - 1)) == 0;
}

static const uint8_t ipv4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The canonical-form rules for an address; see struct door_address. */
static bool address_valid(const struct door_address *a)
{
	if (a->port == 0)
		return false;
	if (a->family == AF_INET)
		return a->scope_id == 0 && bytes_all_zero(a->addr + 4, 12);
	if (a->family == AF_INET6)
		return memcmp(a->addr, ipv4_mapped_prefix, sizeof ipv4_mapped_prefix) != 0;
	return false;
}

size_t door_message_size(enum door_message_type type)
{
	switch (type) {
	case DOOR_MESSAGE_REQUEST: return DOOR_REQUEST_SIZE;
	case DOOR_MESSAGE_ACCEPT: return DOOR_ACCEPT_SIZE;
	case DOOR_MESSAGE_FORWARD: return DOOR_REQUEST_SIZE;
	case DOOR_MESSAGE_ATTACH: return DOOR_ATTACH_SIZE;
	}
	return 0;
}

size_t door_message_fd_count(enum door_message_type type)
{
	switch (type) {
	case DOOR_MESSAGE_REQUEST: return DOOR_REQUEST_FDS;
	case DOOR_MESSAGE_ACCEPT: return DOOR_ACCEPT_FDS;
	case DOOR_MESSAGE_FORWARD: return DOOR_FORWARD_FDS;
	case DOOR_MESSAGE_ATTACH: return DOOR_ATTACH_FDS;
	}
	return 0;
}

static bool request_valid(const struct door_request *r)
{
	return address_valid(&r->source) && address_valid(&r->destination) &&
	       !bytes_all_zero(r->token, sizeof r->token) && ring_size_valid(r->ring_size) &&
	       (r->flags & ~DOOR_REQUEST_FLAGS_KNOWN) == 0;
}

static bool accept_valid(const struct door_accept *a)
{
	if (bytes_all_zero(a->token, sizeof a->token))
		return false;
	if (a->status == 0)
		return ring_size_valid(a->ring_size);
	return a->status > 0 && a->status <= DOOR_STATUS_ERRNO_MAX && a->ring_size == 0;
}

static bool attach_valid(const struct door_attach *a)
{
	return !bytes_all_zero(a->token, sizeof a->token) && a->epoch != 0 &&
	       ring_size_valid(a->ring_size);
}

int door_message_validate(const struct door_message *msg)
{
	switch (msg->type) {
	case DOOR_MESSAGE_REQUEST:
	case DOOR_MESSAGE_FORWARD: return request_valid(&msg->request) ? 0 : -EINVAL;
	case DOOR_MESSAGE_ACCEPT: return accept_valid(&msg->accept) ? 0 : -EINVAL;
	case DOOR_MESSAGE_ATTACH: return attach_valid(&msg->attach) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

static void address_encode(uint8_t *p, const struct door_address *a)
{
	memset(p, 0, DOOR_ADDRESS_SIZE);
	p[ADDRESS_FAMILY] = a->family == AF_INET ? WIRE_FAMILY_INET : WIRE_FAMILY_INET6;
	/* Network order: the high byte first, as in sin_port. */
	p[ADDRESS_PORT] = (uint8_t)(a->port >> 8);
	p[ADDRESS_PORT + 1] = (uint8_t)a->port;
	put_u32(p + ADDRESS_SCOPE, a->scope_id);
	memcpy(p + ADDRESS_BYTES, a->addr, sizeof a->addr);
}

long door_message_encode(const struct door_message *msg, void *buf, size_t size)
{
	uint8_t *p = buf;
	size_t len;

	if (door_message_validate(msg) < 0)
		return -EINVAL;
	len = door_message_size(msg->type);
	if (size < len)
		return -EMSGSIZE;

	memset(p, 0, len);
	put_u32(p + HEADER_MAGIC, DOOR_MESSAGE_MAGIC);
	put_u16(p + HEADER_VERSION, DOOR_MESSAGE_VERSION);
	put_u16(p + HEADER_TYPE, (uint16_t)msg->type);
	put_u32(p + HEADER_LENGTH, (uint32_t)len);

	if (msg->type == DOOR_MESSAGE_REQUEST || msg->type == DOOR_MESSAGE_FORWARD) {
		const struct door_request *r = &msg->request;

		address_encode(p + REQUEST_SOURCE, &r->source);
		address_encode(p + REQUEST_DESTINATION, &r->destination);
		memcpy(p + REQUEST_TOKEN, r->token, sizeof r->token);
		put_u32(p + REQUEST_RING_SIZE, r->ring_size);
		put_u32(p + REQUEST_FLAGS, r->flags);
	} else if (msg->type == DOOR_MESSAGE_ATTACH) {
		const struct door_attach *a = &msg->attach;

		memcpy(p + ATTACH_TOKEN, a->token, sizeof a->token);
		put_u32(p + ATTACH_EPOCH, a->epoch);
		put_u32(p + ATTACH_RING_SIZE, a->ring_size);
	} else {
		const struct door_accept *a = &msg->accept;

		memcpy(p + ACCEPT_TOKEN, a->token, sizeof a->token);
		put_u32(p + ACCEPT_STATUS, (uint32_t)a->status);
		put_u32(p + ACCEPT_RING_SIZE, a->ring_size);
	}
	return (long)len;
}

/* Reads an address; false when the family byte or the reserved byte is wrong. */
static bool address_decode(const uint8_t *p, struct door_address *a)
{
	if (p[ADDRESS_RESERVED] != 0)
		return false;
	switch (p[ADDRESS_FAMILY]) {
	case WIRE_FAMILY_INET: a->family = AF_INET; break;
	case WIRE_FAMILY_INET6: a->family = AF_INET6; break;
	default: return false;
	}
	a->port = (uint16_t)(p[ADDRESS_PORT] << 8 | p[ADDRESS_PORT + 1]);
	a->scope_id = get_u32(p + ADDRESS_SCOPE);
	memcpy(a->addr, p + ADDRESS_BYTES, sizeof a->addr);
	return address_valid(a);
}

int door_message_decode(const void *buf, size_t len, struct door_message *out)
{
	const uint8_t *p = buf;
	struct door_message msg;
	uint32_t type;

	if (len < DOOR_HEADER_SIZE)
		return -EBADMSG;
	if (get_u32(p + HEADER_MAGIC) != DOOR_MESSAGE_MAGIC ||
	    get_u16(p + HEADER_VERSION) != DOOR_MESSAGE_VERSION ||
	    get_u32(p + HEADER_RESERVED) != 0)
		return -EBADMSG;
	type = get_u16(p + HEADER_TYPE);
	if (type < DOOR_MESSAGE_REQUEST || type > DOOR_MESSAGE_ATTACH)
		return -EBADMSG;
	/* The length field, the received size and the type's size must all agree. */
	if (get_u32(p + HEADER_LENGTH) != len || door_message_size(type) != len)
		return -EBADMSG;

	memset(&msg, 0, sizeof msg);
	msg.type = (enum door_message_type)type;
	if (msg.type == DOOR_MESSAGE_REQUEST || msg.type == DOOR_MESSAGE_FORWARD) {
		struct door_request *r = &msg.request;

		if (!address_decode(p + REQUEST_SOURCE, &r->source) ||
		    !address_decode(p + REQUEST_DESTINATION, &r->destination))
			return -EBADMSG;
		memcpy(r->token, p + REQUEST_TOKEN, sizeof r->token);
		r->ring_size = get_u32(p + REQUEST_RING_SIZE);
		r->flags = get_u32(p + REQUEST_FLAGS);
		if (!request_valid(r))
			return -EBADMSG;
	} else if (msg.type == DOOR_MESSAGE_ATTACH) {
		struct door_attach *a = &msg.attach;

		memcpy(a->token, p + ATTACH_TOKEN, sizeof a->token);
		a->epoch = get_u32(p + ATTACH_EPOCH);
		a->ring_size = get_u32(p + ATTACH_RING_SIZE);
		if (!attach_valid(a))
			return -EBADMSG;
	} else {
		struct door_accept *a = &msg.accept;
		uint32_t status = get_u32(p + ACCEPT_STATUS);

		if (status > DOOR_STATUS_ERRNO_MAX)
			return -EBADMSG;
		memcpy(a->token, p + ACCEPT_TOKEN, sizeof a->token);
		a->status = (int)status;
		a->ring_size = get_u32(p + ACCEPT_RING_SIZE);
		if (!accept_valid(a))
			return -EBADMSG;
	}
	*out = msg;
	return 0;
}

int door_accept_check(const struct door_request *req, const struct door_accept *acc)
{
	if (memcmp(req->token, acc->token, sizeof req->token) != 0)
		return -EPROTO;
	if (acc->status != 0)
		return -acc->status;
	if (acc->ring_size > req->ring_size)
		return -EPROTO;
	return 0;
}

int door_address_from_sockaddr(struct door_address *out, const struct sockaddr *addr,
			       socklen_t len)
{
	struct door_address a;

	if (addr == NULL || len < (socklen_t)sizeof(sa_family_t))
		return -EINVAL;
	memset(&a, 0, sizeof a);
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

		if (len < (socklen_t)sizeof *in)
			return -EINVAL;
		a.family = AF_INET;
		a.port = ntohs(in->sin_port);
		memcpy(a.addr, &in->sin_addr, 4);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

		if (len < (socklen_t)sizeof *in6)
			return -EINVAL;
		a.port = ntohs(in6->sin6_port);
		if (memcmp(&in6->sin6_addr, ipv4_mapped_prefix, sizeof ipv4_mapped_prefix) == 0) {
			a.family = AF_INET;
			memcpy(a.addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			a.family = AF_INET6;
			a.scope_id = in6->sin6_scope_id;
			memcpy(a.addr, &in6->sin6_addr, 16);
		}
	} else {
		return -EAFNOSUPPORT;
	}
	*out = a;
	return 0;
}

int door_address_to_sockaddr(const struct door_address *addr, struct sockaddr *out,
			     socklen_t size)
{
	if (addr->family == AF_INET) {
		struct sockaddr_in in;

		if (size < (socklen_t)sizeof in)
			return -ENOSPC;
		memset(&in, 0, sizeof in);
		in.sin_family = AF_INET;
		in.sin_port = htons(addr->port);
		memcpy(&in.sin_addr, addr->addr, 4);
		memcpy(out, &in, sizeof in);
		return (int)sizeof in;
	}
	if (addr->family == AF_INET6) {
		struct sockaddr_in6 in6;

		if (size < (socklen_t)sizeof in6)
			return -ENOSPC;
		memset(&in6, 0, sizeof in6);
		in6.sin6_family = AF_INET6;
		in6.sin6_port = htons(addr->port);
		in6.sin6_scope_id = addr->scope_id;
		memcpy(&in6.sin6_addr, addr->addr, 16);
		memcpy(out, &in6, sizeof in6);
		return (int)sizeof in6;
	}
	return -EINVAL;
}

bool door_address_equal(const struct door_address *a, const struct door_address *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && a->port == b->port && a->scope_id == b->scope_id &&
	       memcmp(a->addr, b->addr, n) == 0;
}
