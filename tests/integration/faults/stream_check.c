/* stream_check: a client/server pair that sends a seeded pseudo-random stream both ways and checks every byte on the far side. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"
#include "stream.h"

/* How long one connection may take, header included. */
#define STREAM_CHECK_TIMEOUT_MS 20000

static volatile sig_atomic_t stream_check_stop;

static void stream_check_usage(FILE *out)
{
	fprintf(out,
		"usage: stream_check server PORT_FILE [COUNT]\n"
		"       stream_check client PORT BYTES SEED\n"
		"  server: listen on 127.0.0.1 at a port the kernel picks, write \"PORT PID\" to\n"
		"    PORT_FILE, and serve COUNT connections one after another (default 1; 0: until\n"
		"    SIGTERM). Prints \"conn N: <verdict>\" for each. Exit 0 when every connection\n"
		"    was right, 3 when some were not, 1 when the server itself failed.\n"
		"  client: connect to 127.0.0.1:PORT, send BYTES of the stream of SEED while\n"
		"    checking the server's, print \"client: <verdict>\". Exit 0 when right, else 1.\n"
		"  A verdict is \"ok sent=N received=N\", or what went wrong and at which offset.\n");
}

static void stream_check_on_term(int sig)
{
	(void)sig;
	stream_check_stop = 1;
}

/* Serves one accepted connection: header, then the exchange. Returns 0 when it was right. */
static int stream_check_serve(int fd, unsigned long number)
{
	char prefix[64];

	snprintf(prefix, sizeof prefix, "conn %lu: ", number);
	return stream_serve(fd, prefix, number, STREAM_CHECK_TIMEOUT_MS);
}

static int stream_check_server(const char *port_file, uint64_t count)
{
	struct sigaction sa;
	unsigned long served = 0, failed = 0;
	unsigned port;
	int listen_fd, r;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = stream_check_on_term; /* no SA_RESTART: accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	listen_fd = fault_listen_loopback(128, &port);
	if (listen_fd < 0) {
		fprintf(stderr, "stream_check: listen: %s\n", strerror(-listen_fd));
		return FAULT_EXIT_FAILED;
	}
	r = fault_write_port_file(port_file, port);
	if (r < 0) {
		fprintf(stderr, "stream_check: %s: %s\n", port_file, strerror(-r));
		return FAULT_EXIT_FAILED;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stream_check_stop && (count == 0 || served < count)) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "stream_check: accept: %s\n", strerror(errno));
			return FAULT_EXIT_FAILED;
		}
		served++;
		if (stream_check_serve(fd, served) < 0)
			failed++;
		close(fd);
	}
	close(listen_fd);
	printf("served %lu connections, %lu failed\n", served, failed);
	return failed == 0 ? FAULT_EXIT_OK : 3;
}

static int stream_check_client(unsigned port, uint64_t bytes, uint64_t seed)
{
	uint8_t header[STREAM_HEADER_SIZE];
	struct stream_result result;
	int fd, r;

	signal(SIGPIPE, SIG_IGN);
	fd = fault_connect_loopback(port);
	if (fd < 0) {
		printf("client: connect: %s\n", fault_errno_name(-fd));
		return FAULT_EXIT_FAILED;
	}
	stream_header_encode(header, bytes, seed);
	r = fault_write_full(fd, header, sizeof header, STREAM_CHECK_TIMEOUT_MS);
	if (r < 0) {
		printf("client: header: %s\n", fault_errno_name(-r));
		return FAULT_EXIT_FAILED;
	}
	r = stream_exchange(fd, bytes, seed, stream_server_seed(seed), ~seed,
			    STREAM_CHECK_TIMEOUT_MS, &result);
	stream_result_print(stdout, "client: ", &result);
	close(fd);
	return r == 0 ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}

int main(int argc, char **argv)
{
	uint64_t port, bytes, seed, count = 1;

	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "server") == 0) {
		if (argc == 4 && fault_parse_u64(argv[3], 0, 1000000, &count) < 0) {
			stream_check_usage(stderr);
			return FAULT_EXIT_USAGE;
		}
		return stream_check_server(argv[2], count);
	}
	if (argc == 5 && strcmp(argv[1], "client") == 0 &&
	    fault_parse_u64(argv[2], 1, 65535, &port) == 0 &&
	    fault_parse_u64(argv[3], 0, STREAM_BYTES_MAX, &bytes) == 0 &&
	    fault_parse_u64(argv[4], 0, UINT64_MAX, &seed) == 0)
		return stream_check_client((unsigned)port, bytes, seed);
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		stream_check_usage(stdout);
		return FAULT_EXIT_OK;
	}
	stream_check_usage(stderr);
	return FAULT_EXIT_USAGE;
}
