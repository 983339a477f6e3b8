/* A poll-based TCP echo server on 127.0.0.1 for integration tests: it prints its port, then echoes every byte back. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_MAX_CLIENTS 256
#define ECHO_BUFFER_SIZE 65536

/* One accepted connection: bytes read but not yet written back sit in buffer[done..length). */
struct echo_client {
	int fd;
	size_t length;
	size_t done;
	char buffer[ECHO_BUFFER_SIZE];
};

static void echo_usage(FILE *out)
{
	fprintf(out,
		"usage: echo_server [-p PORT] [-t SECONDS]\n"
		"  Listen on 127.0.0.1:PORT (default 0: the kernel picks a free port), print the\n"
		"  port on stdout, echo every byte of every connection back, and exit after\n"
		"  SECONDS (default 300; 0 means never) or on SIGTERM/SIGINT.\n");
}

/* Parses a decimal number in [0, max]; returns it, or -1 when the text is not one. */
static long echo_parse_number(const char *text, long max)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < 0 || value > max)
		return -1;
	return value;
}

/* Opens the non-blocking listening socket on 127.0.0.1:port; returns the fd or -errno. */
static int echo_listen(unsigned port, unsigned *bound_port)
{
	struct sockaddr_in address = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t length = sizeof(address);
	int one = 1;
	int fd, error;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
	    listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
		error = -errno;
		close(fd);
		return error;
	}
	*bound_port = ntohs(address.sin_port);
	return fd;
}

/* Accepts every pending connection into a free slot; connections beyond the table are refused. */
static void echo_accept_all(int listen_fd, struct echo_client **clients)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		size_t slot;

		if (fd < 0)
			return; /* EAGAIN, or an aborted connection: nothing more to take now */
		for (slot = 0; slot < ECHO_MAX_CLIENTS && clients[slot] != NULL; slot++)
			;
		if (slot == ECHO_MAX_CLIENTS) {
			close(fd);
			continue;
		}
		clients[slot] = calloc(1, sizeof(**clients));
		if (clients[slot] == NULL) {
			close(fd);
			continue;
		}
		clients[slot]->fd = fd;
	}
}

/* Moves bytes for one ready client; returns false when the connection is finished. */
static bool echo_serve_client(struct echo_client *client, short revents)
{
	ssize_t n;

	if (client->done < client->length) {
		n = write(client->fd, client->buffer + client->done, client->length - client->done);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		client->done += (size_t)n;
		if (client->done == client->length)
			client->done = client->length = 0;
		return true;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return true;
	n = read(client->fd, client->buffer, sizeof(client->buffer));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	client->length = (size_t)n;
	client->done = 0;
	return true;
}

int main(int argc, char **argv)
{
	static struct echo_client *clients[ECHO_MAX_CLIENTS];
	struct pollfd fds[ECHO_MAX_CLIENTS + 1];
	size_t slot_of[ECHO_MAX_CLIENTS + 1];
	long port = 0, lifetime = 300;
	unsigned bound_port = 0;
	time_t deadline;
	int option, listen_fd;

	while ((option = getopt(argc, argv, "p:t:h")) != -1) {
		switch (option) {
		case 'p':
			port = echo_parse_number(optarg, 65535);
			break;
		case 't':
			lifetime = echo_parse_number(optarg, INT_MAX);
			break;
		case 'h':
			echo_usage(stdout);
			return 0;
		default:
			echo_usage(stderr);
			return 2;
		}
		if (port < 0 || lifetime < 0) {
			echo_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		echo_usage(stderr);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	listen_fd = echo_listen((unsigned)port, &bound_port);
	if (listen_fd < 0) {
		fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%ld: %s\n", port,
			strerror(-listen_fd));
		return 1;
	}
	printf("%u\n", bound_port);
	fflush(stdout);
	deadline = lifetime > 0 ? time(NULL) + lifetime : 0;

	for (;;) {
		nfds_t count = 1;
		int ready;

		if (deadline != 0 && time(NULL) >= deadline) {
			fprintf(stderr, "echo_server: lifetime of %ld s over, exiting\n", lifetime);
			return 0;
		}
		fds[0] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		for (size_t slot = 0; slot < ECHO_MAX_CLIENTS; slot++) {
			struct echo_client *client = clients[slot];

			if (client == NULL)
				continue;
			fds[count].fd = client->fd;
			fds[count].events = client->done < client->length ? POLLOUT : POLLIN;
			fds[count].revents = 0;
			slot_of[count++] = slot;
		}
		ready = poll(fds, count, 1000);
		if (ready < 0 && errno != EINTR) {
			perror("echo_server: poll");
			return 1;
		}
		if (ready <= 0)
			continue;
		for (nfds_t i = 1; i < count; i++) {
			size_t slot = slot_of[i];

			if (fds[i].revents == 0)
				continue;
			if (!echo_serve_client(clients[slot], fds[i].revents)) {
				close(clients[slot]->fd);
				free(clients[slot]);
				clients[slot] = NULL;
			}
		}
		if (fds[0].revents & POLLIN)
			echo_accept_all(listen_fd, clients);
	}
}
