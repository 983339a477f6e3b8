/* epoll_echo: an epoll echo server that, once N connections have come and gone, checks that its fds and memfd mappings are back to where they started. */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_util.h"

#define EPOLL_ECHO_FD_MAX 8192
#define EPOLL_ECHO_BUFFER 4096
#define EPOLL_ECHO_NOFILE 4096
#define EPOLL_ECHO_SETTLE_MS 2000

/* Bytes read from a connection and not yet written back. */
struct echo_pending {
	bool echoed; /* at least one byte went back */
	size_t length;
	char data[EPOLL_ECHO_BUFFER];
};

static struct echo_pending *echo_pending[EPOLL_ECHO_FD_MAX];

static void epoll_echo_usage(FILE *out)
{
	fprintf(out,
		"usage: epoll_echo PORT_FILE N\n"
		"  Echo every byte on 127.0.0.1 (port written as \"PORT PID\" to PORT_FILE) with one\n"
		"  level-triggered epoll set, RLIMIT_NOFILE raised to %d. Once N connections are\n"
		"  open and each had a round trip, print their fds and memfd mappings. When N\n"
		"  connections have been accepted and closed, compare the open fds and the \"/memfd:\" mappings of\n"
		"  /proc/self/maps with their counts before the first accept, print the result\n"
		"  (\"server: clean ...\" or \"server: LEAK ...\") and exit 0 when clean, else 1.\n",
		EPOLL_ECHO_NOFILE);
}

/* Drops connection FD: out of the set, closed, its buffer freed. */
static void epoll_echo_close(int epfd, int fd)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(echo_pending[fd]);
	echo_pending[fd] = NULL;
}

/*
 * Reads what FD has and writes it back; returns 1 when the connection ended, 0, or -errno.
 * Counts in *ECHOED the connections that had their first byte echoed.
 */
static int epoll_echo_serve(int epfd, int fd, unsigned long *echoed)
{
	struct echo_pending *p = echo_pending[fd];
	ssize_t n;

	if (p->length == 0) {
		n = read(fd, p->data, sizeof p->data);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return 1;
		p->length = (size_t)n;
	}
	n = send(fd, p->data, p->length, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n > 0 && !p->echoed) {
		p->echoed = true;
		++*echoed;
	}
	memmove(p->data, p->data + n, p->length - (size_t)n);
	p->length -= (size_t)n;
	/* Wait for room to write the rest, or for more to read. */
	struct epoll_event ev = { .events = p->length > 0 ? EPOLLOUT : EPOLLIN, .data.fd = fd };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Waits up to EPOLL_ECHO_SETTLE_MS for the counts to fall back to the baseline; prints the verdict. */
static int epoll_echo_check(int base_fds, int base_memfds, unsigned long n)
{
	double start = fault_now_ms();
	int fds, memfds;

	for (;;) {
		fds = fault_count_fds();
		memfds = fault_count_maps("/memfd:");
		if ((fds == base_fds && memfds == base_memfds) ||
		    fault_now_ms() - start > EPOLL_ECHO_SETTLE_MS)
			break;
		fault_sleep_ms(10);
	}
	if (fds == base_fds && memfds == base_memfds) {
		printf("server: clean after %lu connections: fds %d (baseline %d), memfd mappings %d "
		       "(baseline %d), settled in %.0f ms\n",
		       n, fds, base_fds, memfds, base_memfds, fault_now_ms() - start);
		return FAULT_EXIT_OK;
	}
	printf("server: LEAK after %lu connections: fds %d (baseline %d), memfd mappings %d "
	       "(baseline %d)\n", n, fds, base_fds, memfds, base_memfds);
	fault_list_fds(stdout, "server:   ");
	fault_list_maps(stdout, "server:   ", "/memfd:");
	return FAULT_EXIT_FAILED;
}

int main(int argc, char **argv)
{
	unsigned long accepted = 0, closed = 0, open_now = 0, echoed = 0;
	int listen_fd, epfd, base_fds, base_memfds, peak_memfds = -1, r;
	struct epoll_event ev;
	unsigned port;
	uint64_t n;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		epoll_echo_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 3 || fault_parse_u64(argv[2], 1, EPOLL_ECHO_FD_MAX / 2, &n) < 0) {
		epoll_echo_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	r = fault_raise_nofile(EPOLL_ECHO_NOFILE);
	if (r < 0) {
		printf("server: cannot raise RLIMIT_NOFILE to %d: %s\n", EPOLL_ECHO_NOFILE,
		       strerror(-r));
		return FAULT_EXIT_SKIP;
	}
	listen_fd = fault_listen_loopback(EPOLL_ECHO_NOFILE, &port);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || epfd < 0) {
		printf("server: listen or epoll_create1 failed\n");
		return FAULT_EXIT_FAILED;
	}
	ev.events = EPOLLIN;
	ev.data.fd = listen_fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
		printf("server: epoll_ctl(listen): %s\n", strerror(errno));
		return FAULT_EXIT_FAILED;
	}
	base_fds = fault_count_fds();
	base_memfds = fault_count_maps("/memfd:");
	printf("server: baseline fds %d, memfd mappings %d\n", base_fds, base_memfds);
	r = fault_write_port_file(argv[1], port);
	if (r < 0) {
		printf("server: %s: %s\n", argv[1], strerror(-r));
		return FAULT_EXIT_FAILED;
	}

	while (closed < n) {
		struct epoll_event events[64];
		int count = epoll_wait(epfd, events, 64, -1);

		if (count < 0 && errno == EINTR)
			continue;
		if (count < 0) {
			printf("server: epoll_wait: %s\n", strerror(errno));
			return FAULT_EXIT_FAILED;
		}
		for (int i = 0; i < count; i++) {
			int fd = events[i].data.fd;

			if (fd == listen_fd) {
				fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0) {
					if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
						continue;
					printf("server: accept after %lu: %s\n", accepted,
					       fault_errno_name(errno));
					return FAULT_EXIT_FAILED;
				}
				if (fd >= EPOLL_ECHO_FD_MAX) {
					printf("server: fd %d past the table\n", fd);
					return FAULT_EXIT_FAILED;
				}
				echo_pending[fd] = calloc(1, sizeof *echo_pending[fd]);
				ev.events = EPOLLIN;
				ev.data.fd = fd;
				if (echo_pending[fd] == NULL ||
				    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
					printf("server: epoll_ctl(ADD %d): %s\n", fd, strerror(errno));
					return FAULT_EXIT_FAILED;
				}
				accepted++;
				open_now++;
				continue;
			}
			r = epoll_echo_serve(epfd, fd, &echoed);
			/* All N open, each with a round trip behind it: the most they hold. */
			if (peak_memfds < 0 && echoed == n && open_now == n) {
				peak_memfds = fault_count_maps("/memfd:");
				printf("server: %lu connections open after a round trip each: memfd "
				       "mappings %d, fds %d\n", open_now, peak_memfds, fault_count_fds());
			}
			if (r != 0) {
				if (r < 0)
					printf("server: connection fd %d: %s\n", fd, fault_errno_name(-r));
				epoll_echo_close(epfd, fd);
				open_now--;
				closed++;
			}
		}
	}
	/* The listening socket and the epoll set stay open: they are part of the baseline. */
	r = epoll_echo_check(base_fds, base_memfds, (unsigned long)n);
	close(epfd);
	close(listen_fd);
	return r;
}
