/* Unit tests of the door message format: encoding, decoding, every malformed message refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "door_message.h"

/* Byte offsets of the wire layout (door_message.c), for tests that corrupt one field. */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_TYPE = 6,
	OFF_LENGTH = 8,
	OFF_RESERVED = 12,
	OFF_SOURCE = 16,
	OFF_DESTINATION = 40,
	OFF_ADDRESS_FAMILY = 0,
	OFF_ADDRESS_RESERVED = 1,
	OFF_ADDRESS_PORT = 2,
	OFF_ADDRESS_SCOPE = 4,
	OFF_ADDRESS_BYTES = 8,
	OFF_TOKEN = 64,
	OFF_RING_SIZE = 80,
	OFF_FLAGS = 84,
	OFF_ACCEPT_STATUS = 32,
	OFF_ACCEPT_RING_SIZE = 36,
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static struct door_address address_v4(const char *text, uint16_t port)
{
	struct door_address a = { .family = AF_INET, .port = port };

	assert_int_equal(inet_pton(AF_INET, text, a.addr), 1);
	return a;
}

static struct door_address address_v6(const char *text, uint16_t port)
{
	struct door_address a = { .family = AF_INET6, .port = port };

	assert_int_equal(inet_pton(AF_INET6, text, a.addr), 1);
	return a;
}

static struct door_message request_valid(void)
{
	struct door_message m = { .type = DOOR_MESSAGE_REQUEST };

	m.request.source = address_v4("127.0.0.1", 40000);
	m.request.destination = address_v4("127.0.0.1", 6379);
	for (size_t i = 0; i < DOOR_TOKEN_SIZE; i++)
		m.request.token[i] = (uint8_t)(0xa0 + i);
	m.request.ring_size = 1u << 20;
	return m;
}

static struct door_message accept_valid(void)
{
	struct door_message m = { .type = DOOR_MESSAGE_ACCEPT };

	for (size_t i = 0; i < DOOR_TOKEN_SIZE; i++)
		m.accept.token[i] = (uint8_t)(0xa0 + i);
	m.accept.ring_size = 1u << 16;
	return m;
}

/* Encodes the valid REQUEST into BUF (DOOR_REQUEST_SIZE bytes). */
static void request_bytes(uint8_t *buf)
{
	struct door_message m = request_valid();

	assert_int_equal(door_message_encode(&m, buf, DOOR_REQUEST_SIZE), DOOR_REQUEST_SIZE);
}

static void assert_refused(const uint8_t *buf, size_t len)
{
	struct door_message out;

	memset(&out, 0x5a, sizeof out);
	assert_int_equal(door_message_decode(buf, len, &out), -EBADMSG);
	/* A refused message leaves the output as it was. */
	assert_int_equal(((const uint8_t *)&out)[0], 0x5a);
}

static void test_request_round_trips(void **state)
{
	struct door_message m = request_valid(), out;
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];

	m.request.destination = address_v6("fe80::1", 443);
	m.request.destination.scope_id = 2;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_REQUEST_SIZE);
	assert_int_equal(door_message_decode(buf, DOOR_REQUEST_SIZE, &out), 0);
	assert_int_equal(out.type, DOOR_MESSAGE_REQUEST);
	assert_true(door_address_equal(&out.request.source, &m.request.source));
	assert_true(door_address_equal(&out.request.destination, &m.request.destination));
	assert_memory_equal(out.request.token, m.request.token, DOOR_TOKEN_SIZE);
	assert_int_equal(out.request.ring_size, 1u << 20);
	assert_int_equal(out.request.flags, 0);
}

static void test_accept_round_trips(void **state)
{
	struct door_message m = accept_valid(), out;
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ACCEPT_SIZE);
	assert_int_equal(door_message_decode(buf, DOOR_ACCEPT_SIZE, &out), 0);
	assert_int_equal(out.type, DOOR_MESSAGE_ACCEPT);
	assert_memory_equal(out.accept.token, m.accept.token, DOOR_TOKEN_SIZE);
	assert_int_equal(out.accept.status, 0);
	assert_int_equal(out.accept.ring_size, 1u << 16);
}

static void test_refused_accept_round_trips(void **state)
{
	struct door_message m = accept_valid(), out;
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];

	m.accept.status = ECONNREFUSED;
	m.accept.ring_size = 0;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ACCEPT_SIZE);
	assert_int_equal(door_message_decode(buf, DOOR_ACCEPT_SIZE, &out), 0);
	assert_int_equal(out.accept.status, ECONNREFUSED);
}

static void test_wire_header_is_magic_version_type_length(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	assert_memory_equal(buf + OFF_MAGIC, "VIDR", 4);
	assert_int_equal(buf[OFF_VERSION], DOOR_MESSAGE_VERSION);
	assert_int_equal(buf[OFF_TYPE], DOOR_MESSAGE_REQUEST);
	assert_int_equal(buf[OFF_LENGTH], DOOR_REQUEST_SIZE);
	/* The port in network order, as in sin_port: 40000 = 0x9c40. */
	assert_int_equal(buf[OFF_SOURCE + OFF_ADDRESS_PORT], 0x9c);
	assert_int_equal(buf[OFF_SOURCE + OFF_ADDRESS_PORT + 1], 0x40);
}

static void test_message_truncated_by_one_byte_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	assert_refused(buf, DOOR_REQUEST_SIZE - 1);
}

static void test_message_shorter_than_header_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	for (size_t len = 0; len < DOOR_HEADER_SIZE; len++)
		assert_refused(buf, len);
}

static void test_message_with_trailing_byte_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE + 1];

	request_bytes(buf);
	buf[DOOR_REQUEST_SIZE] = 0;
	put_u32(buf + OFF_LENGTH, DOOR_REQUEST_SIZE + 1);
	assert_refused(buf, DOOR_REQUEST_SIZE + 1);
}

static void test_wrong_magic_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_MAGIC] ^= 0x20;
	assert_refused(buf, sizeof buf);
}

static void test_wrong_version_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_VERSION] = DOOR_MESSAGE_VERSION + 1;
	assert_refused(buf, sizeof buf);
	buf[OFF_VERSION] = 0;
	assert_refused(buf, sizeof buf);
}

static void test_unknown_type_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_TYPE] = 5;
	assert_refused(buf, sizeof buf);
	buf[OFF_TYPE] = 0;
	assert_refused(buf, sizeof buf);
}

static struct door_message attach_valid(void)
{
	struct door_message m = { .type = DOOR_MESSAGE_ATTACH };

	memset(m.attach.token, 0xa5, sizeof m.attach.token);
	m.attach.epoch = 7;
	m.attach.ring_size = 1u << 20;
	return m;
}

static void test_attach_round_trips(void **state)
{
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];
	struct door_message m = attach_valid(), out;

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ATTACH_SIZE);
	assert_int_equal(door_message_decode(buf, DOOR_ATTACH_SIZE, &out), 0);
	assert_int_equal(out.type, DOOR_MESSAGE_ATTACH);
	assert_int_equal(out.attach.epoch, 7);
	assert_int_equal(out.attach.ring_size, 1u << 20);
	assert_memory_equal(out.attach.token, m.attach.token, DOOR_TOKEN_SIZE);
	assert_int_equal(door_message_fd_count(DOOR_MESSAGE_ATTACH), 1);
}

static void test_attach_with_epoch_zero_is_refused(void **state)
{
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];
	struct door_message m = attach_valid();

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ATTACH_SIZE);
	memset(buf + DOOR_HEADER_SIZE + DOOR_TOKEN_SIZE, 0, 4);
	assert_refused(buf, DOOR_ATTACH_SIZE);
	m.attach.epoch = 0;
	assert_int_equal(door_message_validate(&m), -EINVAL);
}

static void test_attach_with_bad_ring_size_is_refused(void **state)
{
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];
	struct door_message m = attach_valid();

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ATTACH_SIZE);
	buf[DOOR_HEADER_SIZE + DOOR_TOKEN_SIZE + 4] = 1; /* 1 MiB + 1 */
	assert_refused(buf, DOOR_ATTACH_SIZE);
}

static void test_forward_carries_a_request_and_four_fds(void **state)
{
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];
	struct door_message m = request_valid(), out;

	m.type = DOOR_MESSAGE_FORWARD;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_REQUEST_SIZE);
	assert_int_equal(door_message_decode(buf, DOOR_REQUEST_SIZE, &out), 0);
	assert_int_equal(out.type, DOOR_MESSAGE_FORWARD);
	assert_memory_equal(&out.request, &m.request, sizeof m.request);
	assert_int_equal(door_message_fd_count(DOOR_MESSAGE_FORWARD), 4);
}

static void test_length_field_disagreeing_with_size_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	put_u32(buf + OFF_LENGTH, DOOR_REQUEST_SIZE - 1);
	assert_refused(buf, sizeof buf);
	put_u32(buf + OFF_LENGTH, 0xffffffffu);
	assert_refused(buf, sizeof buf);
}

static void test_accept_type_with_request_size_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	/* Header consistent with the received size, but ACCEPT is 40 bytes, not 88. */
	request_bytes(buf);
	buf[OFF_TYPE] = DOOR_MESSAGE_ACCEPT;
	assert_refused(buf, sizeof buf);
}

static void test_nonzero_reserved_header_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_RESERVED + 3] = 1;
	assert_refused(buf, sizeof buf);
}

static void test_family_other_than_inet_is_refused(void **state)
{
	static const uint8_t families[] = { 0, 1, 2, 5, 10, 255 };
	uint8_t buf[DOOR_REQUEST_SIZE];

	for (size_t i = 0; i < sizeof families; i++) {
		request_bytes(buf);
		buf[OFF_DESTINATION + OFF_ADDRESS_FAMILY] = families[i];
		assert_refused(buf, sizeof buf);
	}
}

static void test_source_port_zero_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_SOURCE + OFF_ADDRESS_PORT] = 0;
	buf[OFF_SOURCE + OFF_ADDRESS_PORT + 1] = 0;
	assert_refused(buf, sizeof buf);
}

static void test_destination_port_zero_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_DESTINATION + OFF_ADDRESS_PORT] = 0;
	buf[OFF_DESTINATION + OFF_ADDRESS_PORT + 1] = 0;
	assert_refused(buf, sizeof buf);
}

static void test_ipv4_address_with_bytes_past_four_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	buf[OFF_SOURCE + OFF_ADDRESS_BYTES + 4] = 1;
	assert_refused(buf, sizeof buf);
	request_bytes(buf);
	buf[OFF_SOURCE + OFF_ADDRESS_SCOPE] = 1;
	assert_refused(buf, sizeof buf);
	request_bytes(buf);
	buf[OFF_SOURCE + OFF_ADDRESS_RESERVED] = 1;
	assert_refused(buf, sizeof buf);
}

static void test_ipv4_mapped_ipv6_address_is_refused(void **state)
{
	struct door_message m = request_valid();
	uint8_t buf[DOOR_REQUEST_SIZE];

	/* The canonical form of ::ffff:127.0.0.1 is AF_INET; the mapped form is refused. */
	m.request.destination = address_v6("::1", 80);
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_REQUEST_SIZE);
	memset(buf + OFF_DESTINATION + OFF_ADDRESS_BYTES, 0, 16);
	buf[OFF_DESTINATION + OFF_ADDRESS_BYTES + 10] = 0xff;
	buf[OFF_DESTINATION + OFF_ADDRESS_BYTES + 11] = 0xff;
	buf[OFF_DESTINATION + OFF_ADDRESS_BYTES + 12] = 127;
	buf[OFF_DESTINATION + OFF_ADDRESS_BYTES + 15] = 1;
	assert_refused(buf, sizeof buf);
}

static void test_ring_size_not_power_of_two_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	put_u32(buf + OFF_RING_SIZE, (1u << 20) + 4096);
	assert_refused(buf, sizeof buf);
}

static void test_ring_size_out_of_range_is_refused(void **state)
{
	static const uint32_t sizes[] = { 0, 1, 2048, 1u << 31 };
	uint8_t buf[DOOR_REQUEST_SIZE];

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		request_bytes(buf);
		put_u32(buf + OFF_RING_SIZE, sizes[i]);
		assert_refused(buf, sizeof buf);
	}
}

static void test_ring_size_limits_are_accepted(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];
	struct door_message out;

	request_bytes(buf);
	put_u32(buf + OFF_RING_SIZE, DOOR_RING_SIZE_MIN);
	assert_int_equal(door_message_decode(buf, sizeof buf, &out), 0);
	put_u32(buf + OFF_RING_SIZE, DOOR_RING_SIZE_MAX);
	assert_int_equal(door_message_decode(buf, sizeof buf, &out), 0);
}

static void test_unknown_flags_are_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	for (unsigned bit = 0; bit < 32; bit++) {
		if (DOOR_REQUEST_FLAGS_KNOWN & (1u << bit))
			continue;
		request_bytes(buf);
		put_u32(buf + OFF_FLAGS, 1u << bit);
		assert_refused(buf, sizeof buf);
	}
}

static void test_all_zero_token_is_refused(void **state)
{
	uint8_t buf[DOOR_REQUEST_SIZE];

	request_bytes(buf);
	memset(buf + OFF_TOKEN, 0, DOOR_TOKEN_SIZE);
	assert_refused(buf, sizeof buf);
}

static void test_accept_status_out_of_range_is_refused(void **state)
{
	struct door_message m = accept_valid();
	uint8_t buf[DOOR_ACCEPT_SIZE];

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ACCEPT_SIZE);
	put_u32(buf + OFF_ACCEPT_RING_SIZE, 0);
	put_u32(buf + OFF_ACCEPT_STATUS, DOOR_STATUS_ERRNO_MAX + 1);
	assert_refused(buf, sizeof buf);
	put_u32(buf + OFF_ACCEPT_STATUS, 0xffffffffu); /* -1 as a signed status */
	assert_refused(buf, sizeof buf);
}

static void test_accept_ok_without_ring_size_is_refused(void **state)
{
	struct door_message m = accept_valid();
	uint8_t buf[DOOR_ACCEPT_SIZE];

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ACCEPT_SIZE);
	put_u32(buf + OFF_ACCEPT_RING_SIZE, 0);
	assert_refused(buf, sizeof buf);
}

static void test_refused_accept_with_ring_size_is_refused(void **state)
{
	struct door_message m = accept_valid();
	uint8_t buf[DOOR_ACCEPT_SIZE];

	assert_int_equal(door_message_encode(&m, buf, sizeof buf), DOOR_ACCEPT_SIZE);
	put_u32(buf + OFF_ACCEPT_STATUS, EACCES);
	assert_refused(buf, sizeof buf);
}

static void test_encode_refuses_invalid_message(void **state)
{
	struct door_message m = request_valid();
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];

	m.request.ring_size = 3000;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), -EINVAL);
	m = request_valid();
	m.request.source.family = AF_UNIX;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), -EINVAL);
	m = request_valid();
	m.type = (enum door_message_type)7;
	assert_int_equal(door_message_encode(&m, buf, sizeof buf), -EINVAL);
}

static void test_encode_refuses_small_buffer(void **state)
{
	struct door_message m = request_valid();
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX];

	assert_int_equal(door_message_encode(&m, buf, DOOR_REQUEST_SIZE - 1), -EMSGSIZE);
}

static void test_sockaddr_ipv4_mapped_becomes_ipv4(void **state)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(5432) };
	struct door_address a, want = address_v4("10.1.2.3", 5432);

	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr), 1);
	assert_int_equal(door_address_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof in6), 0);
	assert_true(door_address_equal(&a, &want));
}

static void test_sockaddr_round_trips(void **state)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080),
				    .sin6_scope_id = 3 };
	struct sockaddr_storage out;
	struct door_address a;

	assert_int_equal(inet_pton(AF_INET6, "fe80::2", &in6.sin6_addr), 1);
	assert_int_equal(door_address_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof in6), 0);
	assert_int_equal(door_address_to_sockaddr(&a, (struct sockaddr *)&out, sizeof out),
			 (int)sizeof in6);
	assert_memory_equal(&out, &in6, sizeof in6);
}

static void test_sockaddr_other_family_or_short_is_refused(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr sa = { .sa_family = AF_UNIX };
	struct door_address a;

	assert_int_equal(door_address_from_sockaddr(&a, &sa, sizeof sa), -EAFNOSUPPORT);
	assert_int_equal(door_address_from_sockaddr(&a, (struct sockaddr *)&in, sizeof in - 1),
			 -EINVAL);
	assert_int_equal(door_address_from_sockaddr(&a, NULL, 0), -EINVAL);
}

static void test_accept_check_accepts_matching_answer(void **state)
{
	struct door_message req = request_valid(), acc = accept_valid();

	assert_int_equal(door_accept_check(&req.request, &acc.accept), 0);
}

static void test_accept_check_refuses_other_token(void **state)
{
	struct door_message req = request_valid(), acc = accept_valid();

	acc.accept.token[5] ^= 1;
	assert_int_equal(door_accept_check(&req.request, &acc.accept), -EPROTO);
}

static void test_accept_check_refuses_larger_ring(void **state)
{
	struct door_message req = request_valid(), acc = accept_valid();

	acc.accept.ring_size = req.request.ring_size * 2;
	assert_int_equal(door_accept_check(&req.request, &acc.accept), -EPROTO);
}

static void test_accept_check_returns_refusal_errno(void **state)
{
	struct door_message req = request_valid(), acc = accept_valid();

	acc.accept.status = EACCES;
	acc.accept.ring_size = 0;
	assert_int_equal(door_accept_check(&req.request, &acc.accept), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trips),
		cmocka_unit_test(test_accept_round_trips),
		cmocka_unit_test(test_refused_accept_round_trips),
		cmocka_unit_test(test_wire_header_is_magic_version_type_length),
		cmocka_unit_test(test_message_truncated_by_one_byte_is_refused),
		cmocka_unit_test(test_message_shorter_than_header_is_refused),
		cmocka_unit_test(test_message_with_trailing_byte_is_refused),
		cmocka_unit_test(test_wrong_magic_is_refused),
		cmocka_unit_test(test_wrong_version_is_refused),
		cmocka_unit_test(test_unknown_type_is_refused),
		cmocka_unit_test(test_attach_round_trips),
		cmocka_unit_test(test_attach_with_epoch_zero_is_refused),
		cmocka_unit_test(test_attach_with_bad_ring_size_is_refused),
		cmocka_unit_test(test_forward_carries_a_request_and_four_fds),
		cmocka_unit_test(test_length_field_disagreeing_with_size_is_refused),
		cmocka_unit_test(test_accept_type_with_request_size_is_refused),
		cmocka_unit_test(test_nonzero_reserved_header_is_refused),
		cmocka_unit_test(test_family_other_than_inet_is_refused),
		cmocka_unit_test(test_source_port_zero_is_refused),
		cmocka_unit_test(test_destination_port_zero_is_refused),
		cmocka_unit_test(test_ipv4_address_with_bytes_past_four_is_refused),
		cmocka_unit_test(test_ipv4_mapped_ipv6_address_is_refused),
		cmocka_unit_test(test_ring_size_not_power_of_two_is_refused),
		cmocka_unit_test(test_ring_size_out_of_range_is_refused),
		cmocka_unit_test(test_ring_size_limits_are_accepted),
		cmocka_unit_test(test_unknown_flags_are_refused),
		cmocka_unit_test(test_all_zero_token_is_refused),
		cmocka_unit_test(test_accept_status_out_of_range_is_refused),
		cmocka_unit_test(test_accept_ok_without_ring_size_is_refused),
		cmocka_unit_test(test_refused_accept_with_ring_size_is_refused),
		cmocka_unit_test(test_encode_refuses_invalid_message),
		cmocka_unit_test(test_encode_refuses_small_buffer),
		cmocka_unit_test(test_sockaddr_ipv4_mapped_becomes_ipv4),
		cmocka_unit_test(test_sockaddr_round_trips),
		cmocka_unit_test(test_sockaddr_other_family_or_short_is_refused),
		cmocka_unit_test(test_accept_check_accepts_matching_answer),
		cmocka_unit_test(test_accept_check_refuses_other_token),
		cmocka_unit_test(test_accept_check_refuses_larger_ring),
		cmocka_unit_test(test_accept_check_returns_refusal_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
