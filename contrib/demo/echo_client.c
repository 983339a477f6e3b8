/* The demo's client: connects to an echo server, times N round trips of a message, checks every byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void client_usage(FILE *out)
{
	fputs("usage: echo_client [-n ROUNDS] [-s SIZE] HOST PORT\n"
	      "  Connect to the echo server at HOST:PORT (an IPv4 address), send SIZE bytes\n"
	      "  (default 64) and read them back ROUNDS times (default 20000), check every byte,\n"
	      "  and print the time per round trip. The last line is machine readable:\n"
	      "  ns_per_round_trip=N\n",
	      out);
}

/* Parses a decimal number in [1, max]; returns it, or -1 when the text is not one. */
static long client_parse_number(const char *text, long max)
{
	char *end;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < 1 || value > max)
		return -1;
	return value;
}

/* Writes all of buf; returns 0 or -errno. */
static int client_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; returns 0, -EPIPE on a premature end of stream, or -errno. */
static int client_read_all(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static double client_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long rounds = 20000, size = 64;
	int option;

	while ((option = getopt(argc, argv, "n:s:h")) != -1) {
		switch (option) {
		case 'n':
			rounds = client_parse_number(optarg, INT_MAX);
			break;
		case 's':
			size = client_parse_number(optarg, 1 << 20);
			break;
		case 'h':
			client_usage(stdout);
			return 0;
		default:
			client_usage(stderr);
			return 2;
		}
		if (rounds < 0 || size < 0) {
			client_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		client_usage(stderr);
		return 2;
	}
	struct sockaddr_in address = { .sin_family = AF_INET };
	long port = client_parse_number(argv[optind + 1], 65535);
	if (inet_pton(AF_INET, argv[optind], &address.sin_addr) != 1 || port < 0) {
		client_usage(stderr);
		return 2;
	}
	address.sin_port = htons((uint16_t)port);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("echo_client: socket");
		return 1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
		fprintf(stderr, "echo_client: connect to %s:%ld: %s\n", argv[optind], port,
			strerror(errno));
		return 1;
	}

	char *out = malloc((size_t)size), *in = malloc((size_t)size);
	if (!out || !in) {
		fputs("echo_client: out of memory\n", stderr);
		return 1;
	}
	double start = client_now_ns();
	for (long round = 0; round < rounds; round++) {
		for (long i = 0; i < size; i++)
			out[i] = (char)(round * 31 + i);
		int err = client_write_all(fd, out, (size_t)size);
		if (err == 0)
			err = client_read_all(fd, in, (size_t)size);
		if (err < 0) {
			fprintf(stderr, "echo_client: round trip %ld: %s\n", round,
				err == -EPIPE ? "the server closed the connection" : strerror(-err));
			return 1;
		}
		if (memcmp(in, out, (size_t)size) != 0) {
			fprintf(stderr, "echo_client: round trip %ld: the echo differs from what was sent\n",
				round);
			return 1;
		}
	}
	double elapsed = client_now_ns() - start;
	close(fd);
	free(out);
	free(in);

	double per_round = elapsed / (double)rounds;
	printf("%ld round trips of %ld bytes in %.1f ms: %.2f us each\n", rounds, size, elapsed / 1e6,
	       per_round / 1e3);
	printf("ns_per_round_trip=%.0f\n", per_round);
	return 0;
}
