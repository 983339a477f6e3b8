/* Fuzzes the door message decoder: a libFuzzer entry point and a deterministic driver. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "door_message.h"

#define FUZZ_NAME "fuzz_door_message"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_ring_size_valid(uint32_t size)
{
	return size >= DOOR_RING_SIZE_MIN && size <= DOOR_RING_SIZE_MAX && (size & (size - 1)) == 0;
}

static bool fuzz_address_valid(const struct door_address *a)
{
	static const uint8_t zero[16];

	if (a->port == 0)
		return false;
	if (a->family == AF_INET)
		return a->scope_id == 0 && memcmp(a->addr + 4, zero, 12) == 0;
	return a->family == AF_INET6;
}

/*
 * The properties of an accepted message, written out again here rather than calling the
 * library's own validator: the decoder must never accept what these reject.
 */
static void fuzz_check_accepted(const uint8_t *data, size_t size, const struct door_message *m)
{
	static const uint8_t zero_token[DOOR_TOKEN_SIZE];
	uint8_t again[DOOR_MESSAGE_SIZE_MAX];

	fuzz_check(size == door_message_size(m->type));
	fuzz_check(data[0] == 'V' && data[1] == 'I' && data[2] == 'D' && data[3] == 'R');
	if (m->type == DOOR_MESSAGE_REQUEST || m->type == DOOR_MESSAGE_FORWARD) {
		const struct door_request *r = &m->request;

		fuzz_check(size == DOOR_REQUEST_SIZE);
		fuzz_check(fuzz_address_valid(&r->source) && fuzz_address_valid(&r->destination));
		fuzz_check(fuzz_ring_size_valid(r->ring_size));
		fuzz_check((r->flags & ~DOOR_REQUEST_FLAGS_KNOWN) == 0);
		fuzz_check(memcmp(r->token, zero_token, DOOR_TOKEN_SIZE) != 0);
	} else if (m->type == DOOR_MESSAGE_ATTACH) {
		fuzz_check(size == DOOR_ATTACH_SIZE);
		fuzz_check(m->attach.epoch != 0 && fuzz_ring_size_valid(m->attach.ring_size));
		fuzz_check(memcmp(m->attach.token, zero_token, DOOR_TOKEN_SIZE) != 0);
	} else {
		const struct door_accept *a = &m->accept;

		fuzz_check(m->type == DOOR_MESSAGE_ACCEPT && size == DOOR_ACCEPT_SIZE);
		fuzz_check(memcmp(a->token, zero_token, DOOR_TOKEN_SIZE) != 0);
		if (a->status == 0)
			fuzz_check(fuzz_ring_size_valid(a->ring_size));
		else
			fuzz_check(a->status > 0 && a->status <= DOOR_STATUS_ERRNO_MAX &&
				   a->ring_size == 0);
	}
	fuzz_check(door_message_validate(m) == 0);
	/* Only the canonical encoding is accepted: encoding the result gives the input back. */
	fuzz_check(door_message_encode(m, again, sizeof again) == (long)size);
	fuzz_check(memcmp(again, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct door_message m;
	int r;

	memset(&m, 0xa5, sizeof m);
	r = door_message_decode(data, size, &m);
	fuzz_check(r == 0 || r == -EBADMSG);
	if (r == 0)
		fuzz_check_accepted(data, size, &m);
	return 0;
}

#ifndef VI_FUZZ_LIBFUZZER

/*
 * The standalone driver: `fuzz_door_message [-n ITERATIONS] [-s SEED]` builds valid REQUEST
 * and ACCEPT messages and feeds ITERATIONS deterministic mutations of them (bit flips, byte
 * changes, interesting 32-bit values at field offsets, truncation, extension, splices of the
 * two seeds) to LLVMFuzzerTestOneInput. A crash, a sanitizer report or a failed check fails
 * the test; the same SEED gives the same inputs.
 */

static const uint32_t fuzz_values[] = {
	0, 1, 2, 4, 6, 10, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000u, 0xffffffffu,
	DOOR_MESSAGE_MAGIC, DOOR_MESSAGE_VERSION, DOOR_MESSAGE_REQUEST, DOOR_MESSAGE_ACCEPT,
	DOOR_REQUEST_SIZE, DOOR_ACCEPT_SIZE, DOOR_HEADER_SIZE, DOOR_RING_SIZE_MIN,
	DOOR_RING_SIZE_MIN - 1, DOOR_RING_SIZE_MAX, DOOR_RING_SIZE_MAX * 2u, 3 << 12,
	DOOR_STATUS_ERRNO_MAX, DOOR_STATUS_ERRNO_MAX + 1, 0xffff0000u,
};

/* Field offsets, where a whole-word change is most likely to reach a check. */
static const size_t fuzz_offsets[] = { 0, 4, 6, 8, 12, 16, 17, 18, 20, 24, 28, 36, 40,
				       41, 42, 44, 48, 60, 64, 72, 80, 84, 32, 36 };

#define FUZZ_CAP (DOOR_MESSAGE_SIZE_MAX * 2)

/* Applies one random mutation to buf (len bytes, room for FUZZ_CAP); returns the new length. */
static size_t fuzz_mutate(uint8_t *buf, size_t len, const uint8_t *other, size_t other_len)
{
	switch (fuzz_below(7)) {
	case 0: /* flip a bit */
		if (len > 0)
			buf[fuzz_below(len)] ^= (uint8_t)(1u << fuzz_below(8));
		return len;
	case 1: /* change a byte */
		if (len > 0)
			buf[fuzz_below(len)] = (uint8_t)fuzz_random();
		return len;
	case 2: { /* an interesting value at a field offset */
		uint32_t v = fuzz_values[fuzz_below(sizeof fuzz_values / sizeof fuzz_values[0])];
		size_t at = fuzz_offsets[fuzz_below(sizeof fuzz_offsets / sizeof fuzz_offsets[0])];
		size_t width = fuzz_below(2) ? 4 : 2;

		for (size_t i = 0; i < width && at + i < len; i++)
			buf[at + i] = (uint8_t)(v >> (8 * i));
		return len;
	}
	case 3: /* truncate */
		return fuzz_below(len + 1);
	case 4: { /* extend with random bytes */
		size_t n = 1 + fuzz_below(8);

		if (len + n > FUZZ_CAP)
			n = FUZZ_CAP - len;
		for (size_t i = 0; i < n; i++)
			buf[len + i] = fuzz_below(2) ? 0 : (uint8_t)fuzz_random();
		return len + n;
	}
	case 5: { /* splice: our head, the other seed's tail */
		size_t at = fuzz_below(len + 1), from = fuzz_below(other_len + 1);
		size_t n = other_len - from;

		if (at + n > FUZZ_CAP)
			n = FUZZ_CAP - at;
		memcpy(buf + at, other + from, n);
		return at + n;
	}
	default: /* copy a run inside the message (an address over the other, say) */
		if (len > 1) {
			size_t from = fuzz_below(len), to = fuzz_below(len);
			size_t n = fuzz_below(len - (from > to ? from : to) + 1);

			memmove(buf + to, buf + from, n);
		}
		return len;
	}
}

static size_t fuzz_seed_request(uint8_t *buf)
{
	struct door_message m = { .type = DOOR_MESSAGE_REQUEST };

	m.request.source.family = AF_INET;
	m.request.source.port = 40000;
	m.request.source.addr[0] = 127;
	m.request.source.addr[3] = 1;
	m.request.destination.family = AF_INET6;
	m.request.destination.port = 6379;
	m.request.destination.addr[15] = 1;
	for (size_t i = 0; i < DOOR_TOKEN_SIZE; i++)
		m.request.token[i] = (uint8_t)(i * 37 + 1);
	m.request.ring_size = 1u << 20;
	fuzz_check(door_message_encode(&m, buf, FUZZ_CAP) == DOOR_REQUEST_SIZE);
	return DOOR_REQUEST_SIZE;
}

static size_t fuzz_seed_accept(uint8_t *buf)
{
	struct door_message m = { .type = DOOR_MESSAGE_ACCEPT };

	for (size_t i = 0; i < DOOR_TOKEN_SIZE; i++)
		m.accept.token[i] = (uint8_t)(i * 37 + 1);
	m.accept.ring_size = 1u << 16;
	fuzz_check(door_message_encode(&m, buf, FUZZ_CAP) == DOOR_ACCEPT_SIZE);
	return DOOR_ACCEPT_SIZE;
}

int main(int argc, char **argv)
{
	uint8_t seeds[2][FUZZ_CAP], buf[FUZZ_CAP];
	size_t seed_len[2];
	long iterations = 100000, accepted = 0;
	uint64_t seed_value = 1;
	struct door_message m;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			iterations = strtol(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			seed_value = strtoull(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: fuzz_door_message [-n ITERATIONS] [-s SEED]\n");
			return 2;
		}
	}

	seed_len[0] = fuzz_seed_request(seeds[0]);
	seed_len[1] = fuzz_seed_accept(seeds[1]);
	/* The seeds decode: mutations start from messages the decoder accepts. */
	for (size_t s = 0; s < 2; s++) {
		fuzz_check(door_message_decode(seeds[s], seed_len[s], &m) == 0);
		LLVMFuzzerTestOneInput(seeds[s], seed_len[s]);
	}

	fuzz_seed(seed_value);
	for (long n = 0; n < iterations; n++) {
		size_t s = fuzz_below(2), len = seed_len[s];
		size_t mutations = 1 + fuzz_below(fuzz_below(4) == 0 ? 16 : 3);

		memcpy(buf, seeds[s], len);
		for (size_t k = 0; k < mutations; k++)
			len = fuzz_mutate(buf, len, seeds[1 - s], seed_len[1 - s]);
		/* Count what still decodes, to show mutations reach past the first checks. */
		accepted += door_message_decode(buf, len, &m) == 0;
		LLVMFuzzerTestOneInput(buf, len);
	}
	/* Every length up to twice the largest message, all zero and all 0xff. */
	for (size_t len = 0; len <= FUZZ_CAP; len++) {
		memset(buf, 0, sizeof buf);
		LLVMFuzzerTestOneInput(buf, len);
		memset(buf, 0xff, sizeof buf);
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("fuzz_door_message: %ld mutated inputs (seed %llu), %ld accepted, no check failed\n",
	       iterations, (unsigned long long)seed_value, accepted);
	return 0;
}

#endif
