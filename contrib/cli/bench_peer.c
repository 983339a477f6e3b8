/* The two ends of `viaudit bench`'s socket cases: a server, and a client that runs one measure. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MAGIC 0x76696265u /* "vibe" */
#define BENCH_STREAM_BUFFER (256 * 1024)

/* The first bytes of every connection: what the client is about to do. */
struct bench_header {
	uint32_t magic;
	uint32_t mode;
	uint32_t size;
	uint32_t reserved;
};

union bench_address {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_un un;
};

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sends all `len` bytes. Returns 0, or -errno. */
static int bench_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Receives exactly `len` bytes. Returns 1 when it did, 0 at EOF before the first byte,
 * -EPROTO at EOF in the middle, or -errno.
 */
static int bench_recv_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, p + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? 0 : -EPROTO;
		got += (size_t)n;
	}
	return 1;
}

/* Whether KIND names a TCP case (else AF_UNIX). Returns 1, 0, or -EINVAL for neither. */
static int bench_kind_is_tcp(const char *kind)
{
	if (strcmp(kind, "tcp") == 0)
		return 1;
	if (strcmp(kind, "unix") == 0)
		return 0;
	return -EINVAL;
}

/*
 * Parses ADDRESS as printed by bench_peer_serve: `127.0.0.1:PORT` for tcp, `@NAME` (an
 * abstract AF_UNIX name) for unix. Returns 0, or -EINVAL.
 */
static int bench_address_parse(bool tcp, const char *text, union bench_address *addr,
			       socklen_t *len)
{
	memset(addr, 0, sizeof(*addr));
	if (tcp) {
		const char *colon = strrchr(text, ':');
		char host[INET_ADDRSTRLEN];
		if (!colon || (size_t)(colon - text) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		char *end;
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || port == 0 || port > 65535)
			return -EINVAL;
		addr->in.sin_family = AF_INET;
		addr->in.sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &addr->in.sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(addr->in);
		return 0;
	}
	size_t name_len = strlen(text);
	if (name_len < 2 || text[0] != '@' || name_len > sizeof(addr->un.sun_path))
		return -EINVAL;
	addr->un.sun_family = AF_UNIX;
	/* An abstract name: sun_path[0] is NUL, and the length counts the name's bytes only. */
	memcpy(addr->un.sun_path + 1, text + 1, name_len - 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);
	return 0;
}

/* Turns off Nagle's algorithm, as every latency benchmark does. Returns 0, or -errno. */
static int bench_set_nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 ? 0 : -errno;
}

/* Echoes messages of `size` bytes until EOF. Returns 0, or -errno. */
static int bench_serve_pingpong(int fd, size_t size, char *buffer)
{
	for (;;) {
		int got = bench_recv_all(fd, buffer, size);
		if (got <= 0)
			return got;
		int err = bench_send_all(fd, buffer, size);
		if (err < 0)
			return err;
	}
}

/* Reads until EOF, then replies with the byte count (8 bytes). Returns 0, or -errno. */
static int bench_serve_stream(int fd, char *buffer)
{
	uint64_t total = 0;
	for (;;) {
		ssize_t n = recv(fd, buffer, BENCH_STREAM_BUFFER, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	return bench_send_all(fd, &total, sizeof(total));
}

/* Serves one accepted connection as its header asks. Returns 0, or -errno. */
static int bench_serve_connection(int fd, bool tcp, char *buffer)
{
	struct bench_header header;
	int got = bench_recv_all(fd, &header, sizeof(header));
	if (got <= 0)
		return got == 0 ? -EPROTO : got;
	if (header.magic != BENCH_MAGIC || header.size == 0 || header.size > BENCH_MAX_SIZE)
		return -EPROTO;
	switch (header.mode) {
	case BENCH_PINGPONG:
		if (tcp) {
			int err = bench_set_nodelay(fd);
			if (err < 0)
				return err;
		}
		return bench_serve_pingpong(fd, header.size, buffer);
	case BENCH_STREAM:
		return bench_serve_stream(fd, buffer);
	default:
		return -EPROTO;
	}
}

/*
 * Makes the listening socket of a server and prints its address on stdout.
 * Returns the socket, or -errno.
 */
static int bench_listen(bool tcp)
{
	union bench_address addr;
	socklen_t len;
	memset(&addr, 0, sizeof(addr));
	int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (tcp) {
		addr.in.sin_family = AF_INET;
		addr.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(addr.in);
	} else {
		char name[64];
		int n = snprintf(name, sizeof(name), "viaudit-bench/%ld", (long)getpid());
		addr.un.sun_family = AF_UNIX;
		memcpy(addr.un.sun_path + 1, name, (size_t)n);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	}
	if (bind(fd, &addr.sa, len) != 0 || listen(fd, 16) != 0)
		goto fail;
	if (tcp) {
		len = sizeof(addr.in);
		if (getsockname(fd, &addr.sa, &len) != 0)
			goto fail;
		printf("127.0.0.1:%u\n", (unsigned)ntohs(addr.in.sin_port));
	} else {
		printf("@%.*s\n", (int)(len - offsetof(struct sockaddr_un, sun_path) - 1),
		       addr.un.sun_path + 1);
	}
	if (fflush(stdout) != 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

int bench_peer_serve(const char *kind)
{
	int tcp = bench_kind_is_tcp(kind);
	if (tcp < 0) {
		fprintf(stderr, "viaudit bench: unknown case '%s'\n", kind);
		return 2;
	}
	char *buffer = malloc(BENCH_STREAM_BUFFER);
	if (!buffer) {
		fputs("viaudit bench: server: out of memory\n", stderr);
		return 1;
	}
	int listener = bench_listen(tcp);
	if (listener < 0) {
		fprintf(stderr, "viaudit bench: server: cannot listen: %s\n", strerror(-listener));
		free(buffer);
		return 1;
	}
	/* One connection at a time: each measure is one client, and the bench waits for it. */
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "viaudit bench: server: accept: %s\n", strerror(errno));
			break;
		}
		int err = bench_serve_connection(fd, tcp, buffer);
		if (err < 0)
			fprintf(stderr, "viaudit bench: server: connection failed: %s\n",
				strerror(-err));
		close(fd);
	}
	close(listener);
	free(buffer);
	return 1;
}

static int bench_compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

void bench_result_set_percentiles(struct bench_result *result, uint32_t *samples, size_t count)
{
	result->samples = count;
	if (count == 0)
		return;
	qsort(samples, count, sizeof(samples[0]), bench_compare_u32);
	/* Nearest rank: the smallest sample with at least p% of the samples at or below it. */
	size_t p50 = (count * 50 + 99) / 100;
	size_t p99 = (count * 99 + 99) / 100;
	result->p50_ns = samples[p50 - 1];
	result->p99_ns = samples[p99 - 1];
}

/*
 * Sends messages of `size` bytes and waits for each to come back, for `seconds`; keeps the
 * round-trip times after the warm-up. Each message carries its sequence number, which the
 * echo must carry back. Returns 0 with `result` filled, or -errno.
 */
static int bench_run_pingpong(int fd, size_t size, double seconds, struct bench_result *result)
{
	char *out = calloc(1, size), *in = malloc(size);
	uint32_t *samples = malloc(BENCH_MAX_SAMPLES * sizeof(uint32_t));
	int err = 0;
	if (!out || !in || !samples) {
		err = -ENOMEM;
		goto done;
	}
	size_t count = 0;
	uint64_t start = bench_now_ns();
	uint64_t warm_end = start + (uint64_t)(bench_warmup_seconds(seconds) * 1e9);
	uint64_t deadline = start + (uint64_t)(seconds * 1e9);
	uint64_t before = start;
	for (uint64_t sequence = 1;; sequence++) {
		memcpy(out, &sequence, size < sizeof(sequence) ? size : sizeof(sequence));
		err = bench_send_all(fd, out, size);
		if (err < 0)
			goto done;
		int got = bench_recv_all(fd, in, size);
		if (got <= 0) {
			err = got == 0 ? -ECONNRESET : got;
			goto done;
		}
		uint64_t after = bench_now_ns();
		if (memcmp(in, out, size < sizeof(sequence) ? size : sizeof(sequence)) != 0) {
			err = -EBADMSG;
			goto done;
		}
		bool over = bench_sample(samples, &count, before, after, warm_end, deadline);
		before = after;
		if (over)
			break;
	}
	bench_result_set_percentiles(result, samples, count);
	result->measured = count > 0;
done:
	free(samples);
	free(in);
	free(out);
	return err;
}

/*
 * Sends messages of `size` bytes for `seconds`, then half-closes and waits for the server's
 * count of the bytes it received, which must be every byte sent. Returns 0 with `result`
 * filled, or -errno.
 */
static int bench_run_stream(int fd, size_t size, double seconds, struct bench_result *result)
{
	char *message = malloc(size);
	if (!message)
		return -ENOMEM;
	memset(message, 'v', size);
	/* Reading the clock after every 64-byte send would weigh on the fastest transports. */
	uint64_t check_every = size >= 4096 ? 1 : 4096 / size;
	uint64_t messages = 0;
	uint64_t start = bench_now_ns();
	uint64_t deadline = start + (uint64_t)(seconds * 1e9);
	int err = 0;
	for (;;) {
		err = bench_send_all(fd, message, size);
		if (err < 0)
			goto done;
		messages++;
		if (messages % check_every == 0 && bench_now_ns() >= deadline)
			break;
	}
	if (shutdown(fd, SHUT_WR) != 0) {
		err = -errno;
		goto done;
	}
	uint64_t received;
	int got = bench_recv_all(fd, &received, sizeof(received));
	if (got <= 0) {
		err = got == 0 ? -ECONNRESET : got;
		goto done;
	}
	uint64_t end = bench_now_ns();
	if (received != messages * size) {
		fprintf(stderr, "viaudit bench: the server received %" PRIu64 " bytes of %" PRIu64 "\n",
			received, messages * size);
		err = -EBADMSG;
		goto done;
	}
	result->messages = messages;
	result->bytes = received;
	result->elapsed_ns = end - start;
	result->measured = true;
done:
	free(message);
	return err;
}

int bench_peer_measure(const char *kind, const char *address, enum bench_mode mode, size_t size,
		       double seconds)
{
	int tcp = bench_kind_is_tcp(kind);
	union bench_address addr;
	socklen_t len;
	if (tcp < 0 || size == 0 || size > BENCH_MAX_SIZE || !(seconds > 0) ||
	    bench_address_parse(tcp, address, &addr, &len) < 0) {
		fprintf(stderr, "viaudit bench: bad measure: %s %s %zu %g\n", kind, address, size,
			seconds);
		return 2;
	}
	int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "viaudit bench: socket: %s\n", strerror(errno));
		return 1;
	}
	int err = 0;
	if (connect(fd, &addr.sa, len) != 0)
		err = -errno;
	if (err == 0 && tcp && mode == BENCH_PINGPONG)
		err = bench_set_nodelay(fd);
	struct bench_header header = { BENCH_MAGIC, (uint32_t)mode, (uint32_t)size, 0 };
	if (err == 0)
		err = bench_send_all(fd, &header, sizeof(header));
	struct bench_result result = { 0 };
	if (err == 0)
		err = mode == BENCH_PINGPONG ? bench_run_pingpong(fd, size, seconds, &result)
					     : bench_run_stream(fd, size, seconds, &result);
	close(fd);
	if (err < 0) {
		fprintf(stderr, "viaudit bench: %s %s, %zu B messages to %s: %s\n", kind,
			mode == BENCH_PINGPONG ? "ping-pong" : "stream", size, address,
			strerror(-err));
		return 1;
	}
	if (mode == BENCH_PINGPONG)
		printf("result pingpong %zu %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", size,
		       result.samples, result.p50_ns, result.p99_ns);
	else
		printf("result stream %zu %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", size,
		       result.messages, result.bytes, result.elapsed_ns);
	return fflush(stdout) == 0 ? 0 : 1;
}

int bench_result_parse(const char *line, struct bench_result *result)
{
	char mode[16];
	size_t size;
	uint64_t a, b, c;
	memset(result, 0, sizeof(*result));
	if (sscanf(line, "result %15s %zu %" SCNu64 " %" SCNu64 " %" SCNu64, mode, &size, &a, &b,
		   &c) != 5)
		return -EINVAL;
	if (strcmp(mode, "pingpong") == 0) {
		result->samples = a;
		result->p50_ns = b;
		result->p99_ns = c;
		result->measured = a > 0;
	} else if (strcmp(mode, "stream") == 0) {
		result->messages = a;
		result->bytes = b;
		result->elapsed_ns = c;
		result->measured = c > 0;
	} else {
		return -EINVAL;
	}
	return 0;
}
