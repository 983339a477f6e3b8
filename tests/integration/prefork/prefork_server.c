/* prefork_server: a pre-forked stream_check server, where worker processes that inherited one listening socket each accept and serve connections. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "stream.h"

#define PREFORK_WORKERS_MAX 64
/* How long one connection may take, header included (as stream_check). */
#define PREFORK_CONN_TIMEOUT_MS 20000
/* How long the whole run may take before the parent gives up. */
#define PREFORK_RUN_TIMEOUT_MS 150000
/* How often a polling worker looks whether the run is over. */
#define PREFORK_POLL_MS 50

enum prefork_mode {
	PREFORK_ACCEPT, /* every worker blocks in accept(): the kernel wakes one per connection */
	PREFORK_POLL,   /* every worker waits in poll() and accepts non-blocking: all wake */
	PREFORK_PARENT, /* as poll, but the parent that opened the socket is worker 0 */
};

/* Counters the workers share (an anonymous shared mapping made before the forks). */
struct prefork_board {
	_Atomic unsigned long accepted; /* connections accepted, in all: numbers them */
	_Atomic unsigned long done;     /* connections served to the end, right or wrong */
	_Atomic unsigned long failed;   /* connections whose exchange went wrong */
	_Atomic unsigned long served[PREFORK_WORKERS_MAX]; /* per worker */
};

static volatile sig_atomic_t prefork_stop;

static void prefork_usage(FILE *out)
{
	fprintf(out,
		"usage: prefork_server PORT_FILE WORKERS COUNT MODE\n"
		"  Listen on 127.0.0.1 at a port the kernel picks, write \"PORT PID\" to PORT_FILE,\n"
		"  fork WORKERS (1..%d) processes that all accept on that socket and serve the\n"
		"  stream_check protocol, until COUNT connections were served in all. MODE:\n"
		"    accept  every worker blocks in accept() (the kernel wakes one per connection)\n"
		"    poll    every worker waits in poll() and accepts non-blocking (all wake)\n"
		"    parent  as poll, but the parent that opened the socket is one of the workers\n"
		"  Prints \"worker W conn N: <verdict>\" per connection, \"worker W served N\" per\n"
		"  worker and \"served N connections, F failed, by K workers\". Exit 0 when all\n"
		"  COUNT were right, 3 when some were not, 1 when the server itself failed.\n",
		PREFORK_WORKERS_MAX);
}

static void prefork_on_term(int sig)
{
	(void)sig;
	prefork_stop = 1;
}

/* Serves one accepted connection: header, then the exchange. Returns 0 when it was right. */
static int prefork_serve(int fd, unsigned worker, unsigned long number)
{
	char prefix[64];

	snprintf(prefix, sizeof prefix, "worker %u conn %lu: ", worker, number);
	return stream_serve(fd, prefix, number, PREFORK_CONN_TIMEOUT_MS);
}

/*
 * Takes the next connection: blocking in accept(), or waiting in poll() first (then the
 * listening socket is non-blocking, and the accept may find that another worker was
 * faster). Returns the fd, -EAGAIN when there was none to take (look at the stop
 * conditions and come back), or -errno.
 */
static int prefork_take(int listen_fd, bool polling)
{
	int fd;

	if (polling) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };
		int r = poll(&p, 1, PREFORK_POLL_MS);

		if (r < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		if (r == 0)
			return -EAGAIN;
	}
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
		return -EAGAIN;
	return -errno;
}

/* A worker's loop: until SIGTERM (or, for a polling worker 0 in the parent, until COUNT were served). */
static int prefork_work(int listen_fd, unsigned worker, bool polling, unsigned long count,
			struct prefork_board *board)
{
	while (!prefork_stop && atomic_load(&board->done) < count) {
		int fd = prefork_take(listen_fd, polling);

		if (fd == -EAGAIN)
			continue;
		if (fd < 0) {
			fprintf(stderr, "prefork_server: worker %u: accept: %s\n", worker,
				strerror(-fd));
			return FAULT_EXIT_FAILED;
		}
		unsigned long number = atomic_fetch_add(&board->accepted, 1) + 1;
		if (prefork_serve(fd, worker, number) < 0)
			atomic_fetch_add(&board->failed, 1);
		atomic_fetch_add(&board->served[worker], 1);
		atomic_fetch_add(&board->done, 1);
		close(fd);
	}
	return FAULT_EXIT_OK;
}

/* A worker process: its pid, and its wait status once reaped. */
struct prefork_child {
	pid_t pid;
	bool reaped;
	int status;
};

/* The parent's watch: until COUNT are served, a worker dies, or the time is up. Returns 0 or -1. */
static int prefork_watch(struct prefork_child *children, unsigned first, unsigned workers,
			 unsigned long count, struct prefork_board *board)
{
	double deadline = fault_now_ms() + PREFORK_RUN_TIMEOUT_MS;

	while (atomic_load(&board->done) < count) {
		for (unsigned w = first; w < workers; w++) {
			struct prefork_child *c = &children[w];

			if (c->reaped || waitpid(c->pid, &c->status, WNOHANG) != c->pid)
				continue;
			c->reaped = true;
			/* A polling worker leaves by itself once the count is reached. */
			if (atomic_load(&board->done) < count) {
				fprintf(stderr, "prefork_server: worker %u (pid %ld) ended early, status %d\n",
					w, (long)c->pid, c->status);
				return -1;
			}
		}
		if (fault_now_ms() > deadline) {
			fprintf(stderr, "prefork_server: %lu of %lu connections served after %d ms\n",
				atomic_load(&board->done), count, PREFORK_RUN_TIMEOUT_MS);
			return -1;
		}
		fault_sleep_ms(10);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct prefork_child children[PREFORK_WORKERS_MAX];
	struct prefork_board *board;
	enum prefork_mode mode;
	uint64_t workers, count;
	struct sigaction sa;
	unsigned port, first, busy = 0;
	int listen_fd, r, status = FAULT_EXIT_OK;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		prefork_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 5 || fault_parse_u64(argv[2], 1, PREFORK_WORKERS_MAX, &workers) < 0 ||
	    fault_parse_u64(argv[3], 1, 1000000, &count) < 0) {
		prefork_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	if (strcmp(argv[4], "accept") == 0) {
		mode = PREFORK_ACCEPT;
	} else if (strcmp(argv[4], "poll") == 0) {
		mode = PREFORK_POLL;
	} else if (strcmp(argv[4], "parent") == 0) {
		mode = PREFORK_PARENT;
	} else {
		prefork_usage(stderr);
		return FAULT_EXIT_USAGE;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = prefork_on_term; /* no SA_RESTART: a blocked accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);

	board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (board == MAP_FAILED) {
		fprintf(stderr, "prefork_server: mmap: %s\n", strerror(errno));
		return FAULT_EXIT_FAILED;
	}
	listen_fd = fault_listen_loopback(128, &port);
	if (listen_fd < 0) {
		fprintf(stderr, "prefork_server: listen: %s\n", strerror(-listen_fd));
		return FAULT_EXIT_FAILED;
	}

	/*
	 * Polling workers need a non-blocking listening socket (the flag is the open file's, so
	 * all share it): a blocking accept after poll() would wait for the next connection when
	 * another worker took this one. In `parent` mode the parent is worker 0 and forks the
	 * others.
	 */
	if (mode != PREFORK_ACCEPT && fcntl(listen_fd, F_SETFL, O_NONBLOCK) < 0) {
		fprintf(stderr, "prefork_server: fcntl: %s\n", strerror(errno));
		return FAULT_EXIT_FAILED;
	}
	first = mode == PREFORK_PARENT ? 1 : 0;
	for (unsigned w = first; w < workers; w++) {
		fflush(NULL);
		children[w] = (struct prefork_child){ .pid = fork() };
		if (children[w].pid < 0) {
			fprintf(stderr, "prefork_server: fork: %s\n", strerror(errno));
			for (unsigned k = first; k < w; k++)
				kill(children[k].pid, SIGKILL);
			return FAULT_EXIT_FAILED;
		}
		if (children[w].pid == 0)
			_exit(prefork_work(listen_fd, w, mode != PREFORK_ACCEPT, count, board));
	}
	/* The port is published only now, so every worker exists before the first client. */
	r = fault_write_port_file(argv[1], port);
	if (r < 0) {
		fprintf(stderr, "prefork_server: %s: %s\n", argv[1], strerror(-r));
		status = FAULT_EXIT_FAILED;
	} else if (mode == PREFORK_PARENT) {
		status = prefork_work(listen_fd, 0, true, count, board);
	}
	if (status == FAULT_EXIT_OK && prefork_watch(children, first, workers, count, board) < 0)
		status = FAULT_EXIT_FAILED;

	for (unsigned w = first; w < workers; w++)
		if (!children[w].reaped)
			kill(children[w].pid, SIGTERM);
	for (unsigned w = first; w < workers; w++) {
		struct prefork_child *c = &children[w];

		if (!c->reaped && waitpid(c->pid, &c->status, 0) == c->pid)
			c->reaped = true;
		if (!c->reaped || !WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
			fprintf(stderr, "prefork_server: worker %u (pid %ld) ended with status %d\n", w,
				(long)c->pid, c->status);
			status = FAULT_EXIT_FAILED;
		}
	}
	close(listen_fd);
	for (unsigned w = 0; w < workers; w++) {
		unsigned long n = atomic_load(&board->served[w]);

		printf("worker %u served %lu\n", w, n);
		busy += n > 0;
	}
	printf("served %lu connections, %lu failed, by %u workers\n", atomic_load(&board->done),
	       atomic_load(&board->failed), busy);
	if (status != FAULT_EXIT_OK)
		return status;
	if (atomic_load(&board->failed) != 0 || atomic_load(&board->done) != count)
		return 3;
	return FAULT_EXIT_OK;
}
