/* A seeded pseudo-random byte stream sent both ways over one socket in random-sized chunks, and verified byte by byte on the far side. */
#ifndef VI_TESTS_STREAM_H
#define VI_TESTS_STREAM_H

#include <stdint.h>
#include <stdio.h>

/*
 * The protocol of stream_check (and of the tools that play its client): the client sends a
 * 16-byte header, its stream length and seed (little-endian u64 each); then both sides send
 * that many bytes at once, the client the stream of SEED and the server the stream of
 * stream_server_seed(SEED), each shuts down its write side after its last byte, and each
 * reads and checks the other's stream up to the EOF.
 *
 * Byte N of a stream depends only on the seed and N, so a byte that is lost, repeated or
 * moved shows as a mismatch at the first offset where it differs.
 */
#define STREAM_HEADER_SIZE 16
#define STREAM_BYTES_MAX ((uint64_t)1 << 40)

/* The seed of the server's stream for a client that sent SEED. */
uint64_t stream_server_seed(uint64_t seed);

/* Fills BUF with LEN bytes of the stream of SEED from OFFSET on. */
void stream_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len);

/* Encodes and decodes the header. */
void stream_header_encode(uint8_t buf[STREAM_HEADER_SIZE], uint64_t bytes, uint64_t seed);
void stream_header_decode(const uint8_t buf[STREAM_HEADER_SIZE], uint64_t *bytes, uint64_t *seed);

enum stream_outcome {
	STREAM_OK,        /* every byte sent, every byte received and checked, then EOF */
	STREAM_EOF_EARLY, /* EOF before all the peer's bytes: at `offset` */
	STREAM_MISMATCH,  /* a byte differs at `offset` */
	STREAM_EXTRA,     /* more bytes than the peer's stream has */
	STREAM_ERROR,     /* a call failed with `error` */
	STREAM_TIMEOUT,   /* the exchange took longer than allowed */
};

struct stream_result {
	enum stream_outcome outcome;
	uint64_t sent;     /* bytes of our stream the socket took */
	uint64_t received; /* bytes of the peer's stream received and found right */
	uint64_t offset;   /* where it went wrong (received offset) */
	uint8_t got, want; /* STREAM_MISMATCH: the byte seen and the byte expected */
	int error;         /* STREAM_ERROR: the errno */
	const char *call;  /* STREAM_ERROR: "read", "write", "shutdown", "poll" */
};

/*
 * Sends BYTES of the stream of SEND_SEED over FD while reading and checking BYTES of the
 * stream of RECV_SEED, in chunks whose sizes come from CHUNK_SEED; then shuts down the write
 * side and reads to the EOF. Sets O_NONBLOCK on FD and drives it with poll(). Gives up after
 * TIMEOUT_MS. Fills RESULT; returns 0 when the outcome is STREAM_OK, else -1.
 */
int stream_exchange(int fd, uint64_t bytes, uint64_t send_seed, uint64_t recv_seed,
		    uint64_t chunk_seed, int timeout_ms, struct stream_result *result);

/*
 * The server's side of one connection: reads the client's header, then runs the exchange
 * with NUMBER folded into the chunk seed, and prints the verdict (or why there was none)
 * as one line after PREFIX. Returns 0 when the outcome is STREAM_OK, else -1.
 */
int stream_serve(int fd, const char *prefix, uint64_t number, int timeout_ms);

/* Prints RESULT as one line after PREFIX: "ok sent=N received=N" or what went wrong. */
void stream_result_print(FILE *out, const char *prefix, const struct stream_result *result);

#endif
