/* The seeded byte stream of stream_check: generation, the full-duplex exchange over poll(), and its verdict. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"

#define STREAM_CHUNK_MAX 65536

uint64_t stream_server_seed(uint64_t seed)
{
	return seed ^ 0x5ca1ab1e0ddba11ull;
}

/* The 8 bytes of the stream of SEED at offsets [8 * BLOCK, 8 * BLOCK + 8). */
static uint64_t stream_block(uint64_t seed, uint64_t block)
{
	uint64_t state = seed ^ (block * 0xd1342543de82ef95ull);

	return fault_random_next(&state);
}

void stream_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len)
{
	while (len > 0) {
		uint64_t block = stream_block(seed, offset / 8);
		unsigned shift = (unsigned)(offset % 8);

		for (; shift < 8 && len > 0; shift++, len--, offset++)
			*buf++ = (uint8_t)(block >> (8 * shift));
	}
}

void stream_header_encode(uint8_t buf[STREAM_HEADER_SIZE], uint64_t bytes, uint64_t seed)
{
	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(bytes >> (8 * i));
		buf[8 + i] = (uint8_t)(seed >> (8 * i));
	}
}

void stream_header_decode(const uint8_t buf[STREAM_HEADER_SIZE], uint64_t *bytes, uint64_t *seed)
{
	*bytes = 0;
	*seed = 0;
	for (int i = 0; i < 8; i++) {
		*bytes |= (uint64_t)buf[i] << (8 * i);
		*seed |= (uint64_t)buf[8 + i] << (8 * i);
	}
}

/* A chunk size: half the time small (1..512 bytes), else up to STREAM_CHUNK_MAX. */
static size_t stream_chunk_size(uint64_t *state)
{
	uint64_t r = fault_random_next(state);

	if (r & 1)
		return 1 + (size_t)((r >> 1) % 512);
	return 1 + (size_t)((r >> 1) % STREAM_CHUNK_MAX);
}

static void stream_fail_error(struct stream_result *result, const char *call, int error)
{
	result->outcome = STREAM_ERROR;
	result->call = call;
	result->error = error;
}

/* Checks LEN received bytes in BUF against the peer's stream; false (RESULT set) on a mismatch. */
static bool stream_check_bytes(const uint8_t *buf, size_t len, uint64_t bytes, uint64_t seed,
			       struct stream_result *result)
{
	uint8_t want[STREAM_CHUNK_MAX];

	if (result->received + len > bytes) {
		result->outcome = STREAM_EXTRA;
		result->offset = bytes;
		return false;
	}
	stream_fill(seed, result->received, want, len);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != want[i]) {
			result->outcome = STREAM_MISMATCH;
			result->offset = result->received + i;
			result->got = buf[i];
			result->want = want[i];
			return false;
		}
	}
	result->received += len;
	return true;
}

int stream_exchange(int fd, uint64_t bytes, uint64_t send_seed, uint64_t recv_seed,
		    uint64_t chunk_seed, int timeout_ms, struct stream_result *result)
{
	static uint8_t out[STREAM_CHUNK_MAX], in[STREAM_CHUNK_MAX];
	uint64_t chunks = chunk_seed;
	double deadline = fault_now_ms() + timeout_ms;
	size_t out_len = 0, out_done = 0;
	bool shut = false, eof = false;
	int flags;

	memset(result, 0, sizeof *result);
	result->outcome = STREAM_OK;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		stream_fail_error(result, "fcntl", errno);
		return -1;
	}

	while (!shut || !eof) {
		struct pollfd p = { .fd = fd, .events = eof ? 0 : POLLIN };
		double left = deadline - fault_now_ms();
		int r;

		if (result->sent == bytes && out_done == out_len && !shut) {
			if (shutdown(fd, SHUT_WR) < 0) {
				stream_fail_error(result, "shutdown", errno);
				return -1;
			}
			shut = true;
			continue;
		}
		if (!shut)
			p.events |= POLLOUT;
		if (left <= 0) {
			result->outcome = STREAM_TIMEOUT;
			result->offset = result->received;
			return -1;
		}
		r = poll(&p, 1, (int)left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			stream_fail_error(result, "poll", errno);
			return -1;
		}
		if (r == 0)
			continue;

		/* Read whenever the socket says so, errors and hang-ups included: read tells which. */
		if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(fd, in, stream_chunk_size(&chunks));

			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				stream_fail_error(result, "read", errno);
				result->offset = result->received;
				return -1;
			}
			if (n == 0) {
				if (result->received < bytes) {
					result->outcome = STREAM_EOF_EARLY;
					result->offset = result->received;
					return -1;
				}
				eof = true;
			}
			if (n > 0 && !stream_check_bytes(in, (size_t)n, bytes, recv_seed, result))
				return -1;
		}
		if (!shut && (p.revents & (POLLOUT | POLLERR))) {
			ssize_t n;

			if (out_done == out_len) {
				size_t want = stream_chunk_size(&chunks);

				if (want > bytes - result->sent)
					want = (size_t)(bytes - result->sent);
				stream_fill(send_seed, result->sent, out, want);
				out_len = want;
				out_done = 0;
				result->sent += want;
			}
			n = send(fd, out + out_done, out_len - out_done, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				result->sent -= out_len - out_done;
				stream_fail_error(result, "write", errno);
				result->offset = result->received;
				return -1;
			}
			if (n > 0)
				out_done += (size_t)n;
		}
	}
	return 0;
}

void stream_result_print(FILE *out, const char *prefix, const struct stream_result *result)
{
	switch (result->outcome) {
	case STREAM_OK:
		fprintf(out, "%sok sent=%llu received=%llu\n", prefix,
			(unsigned long long)result->sent, (unsigned long long)result->received);
		break;
	case STREAM_EOF_EARLY:
		fprintf(out, "%seof at offset %llu (sent=%llu)\n", prefix,
			(unsigned long long)result->offset, (unsigned long long)result->sent);
		break;
	case STREAM_MISMATCH:
		fprintf(out, "%smismatch at offset %llu: got 0x%02x, expected 0x%02x (sent=%llu)\n",
			prefix, (unsigned long long)result->offset, result->got, result->want,
			(unsigned long long)result->sent);
		break;
	case STREAM_EXTRA:
		fprintf(out, "%sextra bytes after offset %llu (sent=%llu)\n", prefix,
			(unsigned long long)result->offset, (unsigned long long)result->sent);
		break;
	case STREAM_ERROR:
		fprintf(out, "%serror %s in %s at offset %llu (sent=%llu)\n", prefix,
			fault_errno_name(result->error), result->call,
			(unsigned long long)result->offset, (unsigned long long)result->sent);
		break;
	case STREAM_TIMEOUT:
		fprintf(out, "%stimeout at offset %llu (sent=%llu)\n", prefix,
			(unsigned long long)result->offset, (unsigned long long)result->sent);
		break;
	}
}

int stream_serve(int fd, const char *prefix, uint64_t number, int timeout_ms)
{
	uint8_t header[STREAM_HEADER_SIZE];
	struct stream_result result;
	uint64_t bytes, seed;
	int r;

	r = fault_read_full(fd, header, sizeof header, timeout_ms);
	if (r < 0) {
		printf("%sno header: %s\n", prefix, r == -ECONNRESET ? "eof" : fault_errno_name(-r));
		return -1;
	}
	stream_header_decode(header, &bytes, &seed);
	if (bytes > STREAM_BYTES_MAX) {
		printf("%sbad header: %llu bytes\n", prefix, (unsigned long long)bytes);
		return -1;
	}
	r = stream_exchange(fd, bytes, stream_server_seed(seed), seed, seed + number, timeout_ms,
			    &result);
	stream_result_print(stdout, prefix, &result);
	return r;
}
