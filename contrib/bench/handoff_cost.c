/* handoff_cost: times, for many accept-then-fork connections, how long a forked child takes from its first read or write of the inherited connection to the first byte (issue 5 item 7). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench_stats.h"

#define HANDOFF_MAX_CONNECTIONS 100000
#define HANDOFF_MAX_MESSAGE 4096
/* A step that takes longer than this has hung: SIGALRM ends the process, loudly. */
#define HANDOFF_STEP_SECONDS 20
#define HANDOFF_POLL_MS 10000

enum handoff_trigger {
	HANDOFF_TRIGGER_READ,  /* T3: the child's first read() */
	HANDOFF_TRIGGER_WRITE, /* T4: the child's first write() */
};

enum handoff_peer_wait {
	HANDOFF_PEER_READ, /* blocked in read() */
	HANDOFF_PEER_POLL, /* blocked in poll(POLLIN), then read() */
	HANDOFF_PEER_SPIN, /* recv(MSG_DONTWAIT) in a loop: always running */
};

struct handoff_options {
	unsigned long connections;
	unsigned long warmup;
	enum handoff_trigger trigger;
	enum handoff_peer_wait peer_wait;
	bool close_before; /* the parent closes its copy before the child's trigger */
	size_t message;
	long settle_us;
	const char *raw_path;
};

/* What one connection measured, written by the child (trigger) and the peer (first byte). */
struct handoff_sample {
	int64_t trigger_start_ns; /* child: just before its first read() or write() */
	int64_t trigger_end_ns;   /* child: when that call returned */
	int64_t peer_first_ns;    /* peer: when its read of the child's first bytes returned */
	int64_t close_ns;         /* parent: how long its close() of its copy took */
	int64_t fork_ns;          /* parent: how long fork() took */
	int64_t first_bytes;      /* what the timed call returned */
};

/*
 * Shared by the server, its children and the peer (MAP_SHARED, made before any fork). The
 * counters hold a connection's number plus one, so that 0 means "none yet"; each is written
 * by one process with release and read by the others with acquire.
 */
struct handoff_shared {
	_Atomic unsigned port;
	_Atomic unsigned long peer_waiting;  /* peer: it is about to wait for the child's bytes */
	_Atomic unsigned long parent_closed; /* server: its close() of connection N returned */
	_Atomic unsigned long done;          /* server: connection N's child has been reaped */
	_Atomic int failed;                  /* any process: a check failed (said on stderr) */
	struct handoff_sample samples[];
};

static struct handoff_shared *handoff_shared;

static void handoff_usage(FILE *out)
{
	fprintf(out,
		"usage: handoff_cost [-n CONNECTIONS] [-w WARMUP] [-t read|write] [-p read|poll|spin]\n"
		"                    [-c before|after] [-m BYTES] [-s SETTLE_US] [-r RAW_FILE]\n"
		"An accept-then-fork server and a peer process (forked before any socket exists) on\n"
		"127.0.0.1. For each of WARMUP + CONNECTIONS connections (default 10 + 200), one after\n"
		"the other: the peer connects and sends a BYTES-byte message (default 64); the server\n"
		"accepts, polls until the message has arrived, waits until the peer is about to wait\n"
		"for the child's bytes, and forks; the parent closes its copy before (-c before, the\n"
		"default, as PostgreSQL's postmaster does) or after (-c after) the child is done. The\n"
		"child closes its copy of the listener, waits until the parent's close() returned (with\n"
		"-c before) and SETTLE_US more (default 100), so that the peer is inside its wait, then:\n"
		"  -t read   (T3, default) times its first read(): from just before the call to its\n"
		"            return with the peer's first bytes; then replies BYTES bytes;\n"
		"  -t write  (T4) times its first write() of BYTES bytes, and the peer times from just\n"
		"            before that write() to the return of its own read() with the first bytes;\n"
		"            then the child reads the peer's message.\n"
		"The peer waits for the child's bytes blocked in read() (-p read, default), blocked in\n"
		"poll() (-p poll), or calling recv(MSG_DONTWAIT) in a loop (-p spin). Every message is\n"
		"checked byte for byte. Prints the port, then per measure: median, p90, p99, max in us.\n"
		"RAW_FILE gets one line per measured connection (ns): index trigger_call first_byte\n"
		"close fork. Exit 0 when every connection was served and checked, 1 otherwise, 2 on\n"
		"bad usage.\n");
}

static int64_t handoff_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void handoff_fail(const char *who, unsigned long index, const char *what, int error)
{
	fprintf(stderr, "handoff_cost: %s, connection %lu: %s%s%s\n", who, index, what,
		error ? ": " : "", error ? strerror(error) : "");
	atomic_store_explicit(&handoff_shared->failed, 1, memory_order_release);
}

/* Waits until *COUNTER reaches at least WANT; spins, yielding, since both sides are awake. */
static void handoff_wait_counter(_Atomic unsigned long *counter, unsigned long want)
{
	/* Pairs with the release store of the process that advances the counter. */
	while (atomic_load_explicit(counter, memory_order_acquire) < want &&
	       !atomic_load_explicit(&handoff_shared->failed, memory_order_acquire))
		sched_yield();
}

static void handoff_spin_us(long us)
{
	int64_t end = handoff_now_ns() + (int64_t)us * 1000;

	while (handoff_now_ns() < end)
		;
}

/* The byte at OFFSET of connection INDEX's message in direction DIRECTION (0 peer->child). */
static unsigned char handoff_pattern(unsigned long index, int direction, size_t offset)
{
	return (unsigned char)(index * 131 + (unsigned long)direction * 71 + offset * 7 + 1);
}

static void handoff_fill(unsigned char *buf, size_t len, unsigned long index, int direction)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = handoff_pattern(index, direction, i);
}

/* Whether BUF[0..LEN) is the part of the message that starts at FROM. */
static bool handoff_check(const unsigned char *buf, size_t from, size_t len, unsigned long index,
			  int direction)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != handoff_pattern(index, direction, from + i))
			return false;
	return true;
}

/* Writes all of BUF. Returns 0 or -errno. */
static int handoff_write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the rest of a message of LEN bytes of which HAVE are in BUF. Returns 0 or -errno. */
static int handoff_read_rest(int fd, unsigned char *buf, size_t have, size_t len)
{
	while (have < len) {
		ssize_t n = read(fd, buf + have, len - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		have += (size_t)n;
	}
	return 0;
}

static int handoff_listen(unsigned *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		int error = errno;

		close(fd);
		return -error;
	}
	*port = ntohs(addr.sin_port);
	return fd;
}

static int handoff_connect(unsigned port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int error = errno;

		close(fd);
		return -error;
	}
	return fd;
}

/* The peer's wait for the first bytes from the child, the way -p says. Returns read()'s result. */
static ssize_t handoff_peer_first_read(int fd, unsigned char *buf, size_t len, enum handoff_peer_wait wait)
{
	for (;;) {
		ssize_t n;

		if (wait == HANDOFF_PEER_POLL) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return -1;
		}
		n = wait == HANDOFF_PEER_SPIN ? recv(fd, buf, len, MSG_DONTWAIT) : read(fd, buf, len);
		if (n >= 0 || (errno != EINTR && errno != EAGAIN))
			return n;
	}
}

/* The peer: connects WARMUP + CONNECTIONS times, one after the other. Returns the exit status. */
static int handoff_peer(const struct handoff_options *o, unsigned long total)
{
	unsigned char out[HANDOFF_MAX_MESSAGE], in[HANDOFF_MAX_MESSAGE];
	unsigned port;

	while ((port = atomic_load_explicit(&handoff_shared->port, memory_order_acquire)) == 0)
		sched_yield();
	for (unsigned long i = 0; i < total; i++) {
		struct handoff_sample *s = &handoff_shared->samples[i];
		ssize_t n;
		int fd, r;

		alarm(HANDOFF_STEP_SECONDS);
		if (atomic_load_explicit(&handoff_shared->failed, memory_order_acquire))
			return 1;
		fd = handoff_connect(port);
		if (fd < 0) {
			handoff_fail("peer", i, "connect", -fd);
			return 1;
		}
		handoff_fill(out, o->message, i, 0);
		if ((r = handoff_write_all(fd, out, o->message)) < 0) {
			handoff_fail("peer", i, "write", -r);
			return 1;
		}
		/* Pairs with the acquire in the server's handoff_wait_counter before fork. */
		atomic_store_explicit(&handoff_shared->peer_waiting, i + 1, memory_order_release);
		n = handoff_peer_first_read(fd, in, o->message, o->peer_wait);
		s->peer_first_ns = handoff_now_ns();
		if (n <= 0) {
			handoff_fail("peer", i, n == 0 ? "EOF before the child's bytes" : "read", n == 0 ? 0 : errno);
			return 1;
		}
		if ((r = handoff_read_rest(fd, in, (size_t)n, o->message)) < 0) {
			handoff_fail("peer", i, "reading the rest of the child's message", -r);
			return 1;
		}
		if (!handoff_check(in, 0, o->message, i, 1)) {
			handoff_fail("peer", i, "the child's message is not what it sent", 0);
			return 1;
		}
		close(fd);
		handoff_wait_counter(&handoff_shared->done, i + 1);
	}
	return 0;
}

/* The forked child: the measured trigger, then the rest of the exchange. Does not return. */
static void handoff_child(const struct handoff_options *o, int listener, int fd, unsigned long i)
{
	struct handoff_sample *s = &handoff_shared->samples[i];
	unsigned char buf[HANDOFF_MAX_MESSAGE];
	int64_t start, end;
	ssize_t n;
	int r;

	alarm(HANDOFF_STEP_SECONDS);
	/*
	 * The buffer is written once before the timed call, so that the copy-on-write fault of
	 * its stack page after fork is not counted: that is the program's cost, not the socket's.
	 */
	memset(buf, 0, sizeof(buf));
	/* As a forking server's child does (PostgreSQL's backend closes the postmaster's ports). */
	close(listener);
	if (o->close_before)
		handoff_wait_counter(&handoff_shared->parent_closed, i + 1);
	if (o->settle_us > 0)
		handoff_spin_us(o->settle_us);
	if (o->trigger == HANDOFF_TRIGGER_READ) {
		start = handoff_now_ns();
		n = read(fd, buf, o->message);
		end = handoff_now_ns();
		if (n <= 0) {
			handoff_fail("child", i, n == 0 ? "EOF on its first read" : "first read", n == 0 ? 0 : errno);
			_exit(1);
		}
		if ((r = handoff_read_rest(fd, buf, (size_t)n, o->message)) < 0) {
			handoff_fail("child", i, "reading the rest of the peer's message", -r);
			_exit(1);
		}
		if (!handoff_check(buf, 0, o->message, i, 0)) {
			handoff_fail("child", i, "the peer's message is not what it sent", 0);
			_exit(1);
		}
		handoff_fill(buf, o->message, i, 1);
		if ((r = handoff_write_all(fd, buf, o->message)) < 0) {
			handoff_fail("child", i, "reply", -r);
			_exit(1);
		}
	} else {
		handoff_fill(buf, o->message, i, 1);
		start = handoff_now_ns();
		n = write(fd, buf, o->message);
		end = handoff_now_ns();
		if (n <= 0) {
			handoff_fail("child", i, "first write", n == 0 ? 0 : errno);
			_exit(1);
		}
		if ((r = handoff_write_all(fd, buf + n, o->message - (size_t)n)) < 0) {
			handoff_fail("child", i, "writing the rest", -r);
			_exit(1);
		}
		/* The peer's message was in flight at fork: it must arrive, once, in order. */
		if ((r = handoff_read_rest(fd, buf, 0, o->message)) < 0) {
			handoff_fail("child", i, "reading the peer's message", -r);
			_exit(1);
		}
		if (!handoff_check(buf, 0, o->message, i, 0)) {
			handoff_fail("child", i, "the peer's message is not what it sent", 0);
			_exit(1);
		}
	}
	s->trigger_start_ns = start;
	s->trigger_end_ns = end;
	s->first_bytes = n;
	close(fd);
	_exit(0);
}

/* The server: accepts, forks a child per connection, reaps it. Returns the exit status. */
static int handoff_server(const struct handoff_options *o, int listener, unsigned long total)
{
	for (unsigned long i = 0; i < total; i++) {
		struct handoff_sample *s = &handoff_shared->samples[i];
		struct pollfd p;
		int64_t t;
		int fd, status;
		pid_t child;

		alarm(HANDOFF_STEP_SECONDS);
		fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			handoff_fail("server", i, "accept", errno);
			return 1;
		}
		/* The peer's message must be in flight, unread, when the server forks. */
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, HANDOFF_POLL_MS) != 1 || !(p.revents & POLLIN)) {
			handoff_fail("server", i, "the peer's message did not arrive", errno);
			return 1;
		}
		handoff_wait_counter(&handoff_shared->peer_waiting, i + 1);
		t = handoff_now_ns();
		child = fork();
		s->fork_ns = handoff_now_ns() - t;
		if (child < 0) {
			handoff_fail("server", i, "fork", errno);
			return 1;
		}
		if (child == 0)
			handoff_child(o, listener, fd, i);
		if (o->close_before) {
			t = handoff_now_ns();
			close(fd);
			s->close_ns = handoff_now_ns() - t;
			/* Pairs with the acquire in the child's handoff_wait_counter. */
			atomic_store_explicit(&handoff_shared->parent_closed, i + 1, memory_order_release);
		}
		while (waitpid(child, &status, 0) < 0)
			if (errno != EINTR) {
				handoff_fail("server", i, "waitpid", errno);
				return 1;
			}
		if (!o->close_before) {
			t = handoff_now_ns();
			close(fd);
			s->close_ns = handoff_now_ns() - t;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (WIFSIGNALED(status))
				fprintf(stderr, "handoff_cost: child of connection %lu killed by signal %d\n",
					i, WTERMSIG(status));
			handoff_fail("server", i, "the child failed", 0);
			return 1;
		}
		/* Pairs with the acquire in the peer's handoff_wait_counter. */
		atomic_store_explicit(&handoff_shared->done, i + 1, memory_order_release);
	}
	return 0;
}

/* Prints "NAME median=.. p90=.. p99=.. max=.." in us of VALUES (ns), sorting them. */
static void handoff_report(const char *name, double *values, size_t count)
{
	double median = bench_stats_median(values, count);
	size_t p90 = (count * 90 + 99) / 100, p99 = (count * 99 + 99) / 100;

	/* Nearest rank: the smallest value with at least P % of the values at or below it. */
	printf("%s median=%.2f p90=%.2f p99=%.2f max=%.2f us\n", name, median / 1000,
	       values[p90 - 1] / 1000, values[p99 - 1] / 1000, values[count - 1] / 1000);
}

static int handoff_parse_options(int argc, char **argv, struct handoff_options *o)
{
	int c;

	*o = (struct handoff_options){ .connections = 200, .warmup = 10, .close_before = true,
				       .message = 64, .settle_us = 100 };
	while ((c = getopt(argc, argv, "n:w:t:p:c:m:s:r:h")) != -1) {
		char *end = NULL;
		unsigned long v = 0;

		if (strchr("nwms", c) != NULL) {
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || *optarg == '-') {
				fprintf(stderr, "handoff_cost: bad number '%s' for -%c\n", optarg, c);
				return -1;
			}
		}
		switch (c) {
		case 'n':
			o->connections = v;
			break;
		case 'w':
			o->warmup = v;
			break;
		case 'm':
			o->message = v;
			break;
		case 's':
			o->settle_us = (long)v;
			break;
		case 't':
			if (strcmp(optarg, "read") == 0)
				o->trigger = HANDOFF_TRIGGER_READ;
			else if (strcmp(optarg, "write") == 0)
				o->trigger = HANDOFF_TRIGGER_WRITE;
			else
				return -1;
			break;
		case 'p':
			if (strcmp(optarg, "read") == 0)
				o->peer_wait = HANDOFF_PEER_READ;
			else if (strcmp(optarg, "poll") == 0)
				o->peer_wait = HANDOFF_PEER_POLL;
			else if (strcmp(optarg, "spin") == 0)
				o->peer_wait = HANDOFF_PEER_SPIN;
			else
				return -1;
			break;
		case 'c':
			if (strcmp(optarg, "before") == 0)
				o->close_before = true;
			else if (strcmp(optarg, "after") == 0)
				o->close_before = false;
			else
				return -1;
			break;
		case 'r':
			o->raw_path = optarg;
			break;
		case 'h':
			handoff_usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || o->connections < 1 || o->connections > HANDOFF_MAX_CONNECTIONS ||
	    o->warmup > HANDOFF_MAX_CONNECTIONS || o->message < 1 || o->message > HANDOFF_MAX_MESSAGE ||
	    o->settle_us > 1000000)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *trigger_names[] = { "read", "write" };
	static const char *peer_names[] = { "read", "poll", "spin" };
	struct handoff_options o;
	unsigned long total;
	double *trigger_call, *first_byte, *close_call, *fork_call;
	size_t size;
	unsigned port = 0;
	int listener, status = 0, peer_status;
	pid_t peer;
	FILE *raw = NULL;

	if (handoff_parse_options(argc, argv, &o) < 0) {
		handoff_usage(stderr);
		return 2;
	}
	total = o.warmup + o.connections;
	size = sizeof(*handoff_shared) + total * sizeof(struct handoff_sample);
	handoff_shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (handoff_shared == MAP_FAILED) {
		perror("handoff_cost: mmap");
		return 1;
	}
	/*
	 * The first call of a function binds its PLT slot (lazily, through la_symbind under
	 * viaudit): a few microseconds that would be timed in the first child of every
	 * connection, since the server itself never reads or writes. Bind them here, on an fd
	 * that does not exist.
	 */
	if (read(-1, NULL, 0) != -1 || write(-1, NULL, 0) != -1)
		fputs("handoff_cost: read/write on fd -1 did not fail\n", stderr);
	/* The peer is forked before any socket exists, so that its fork hands nothing over. */
	peer = fork();
	if (peer < 0) {
		perror("handoff_cost: fork");
		return 1;
	}
	if (peer == 0)
		_exit(handoff_peer(&o, total));
	listener = handoff_listen(&port);
	if (listener < 0) {
		fprintf(stderr, "handoff_cost: listen on 127.0.0.1: %s\n", strerror(-listener));
		kill(peer, SIGKILL);
		return 1;
	}
	printf("port=%u trigger=%s peer=%s parent_close=%s connections=%lu warmup=%lu message=%zu settle_us=%ld\n",
	       port, trigger_names[o.trigger], peer_names[o.peer_wait],
	       o.close_before ? "before" : "after", o.connections, o.warmup, o.message, o.settle_us);
	fflush(stdout);
	/* Pairs with the acquire in the peer's wait for the port. */
	atomic_store_explicit(&handoff_shared->port, port, memory_order_release);
	status = handoff_server(&o, listener, total);
	alarm(0);
	if (status != 0)
		kill(peer, SIGKILL);
	while (waitpid(peer, &peer_status, 0) < 0)
		if (errno != EINTR) {
			perror("handoff_cost: waitpid");
			return 1;
		}
	if (!WIFEXITED(peer_status) || WEXITSTATUS(peer_status) != 0 ||
	    atomic_load_explicit(&handoff_shared->failed, memory_order_acquire))
		status = 1;
	close(listener);
	if (status != 0) {
		fprintf(stderr, "handoff_cost: FAILED (see above); no figures\n");
		return 1;
	}

	trigger_call = calloc(o.connections, sizeof(double));
	first_byte = calloc(o.connections, sizeof(double));
	close_call = calloc(o.connections, sizeof(double));
	fork_call = calloc(o.connections, sizeof(double));
	if (trigger_call == NULL || first_byte == NULL || close_call == NULL || fork_call == NULL) {
		fputs("handoff_cost: out of memory\n", stderr);
		return 1;
	}
	if (o.raw_path != NULL && (raw = fopen(o.raw_path, "w")) == NULL) {
		perror(o.raw_path);
		return 1;
	}
	for (unsigned long i = 0; i < o.connections; i++) {
		const struct handoff_sample *s = &handoff_shared->samples[o.warmup + i];

		trigger_call[i] = (double)(s->trigger_end_ns - s->trigger_start_ns);
		/* T3: the child's own read brings the first byte; T4: the peer's read does. */
		first_byte[i] = o.trigger == HANDOFF_TRIGGER_READ ?
			trigger_call[i] : (double)(s->peer_first_ns - s->trigger_start_ns);
		close_call[i] = (double)s->close_ns;
		fork_call[i] = (double)s->fork_ns;
		if (raw != NULL)
			fprintf(raw, "%lu %.0f %.0f %.0f %.0f\n", i, trigger_call[i], first_byte[i],
				close_call[i], fork_call[i]);
	}
	if (raw != NULL && fclose(raw) != 0) {
		perror(o.raw_path);
		return 1;
	}
	handoff_report(o.trigger == HANDOFF_TRIGGER_READ ? "child_read" : "child_write", trigger_call,
		       o.connections);
	handoff_report("trigger_to_first_byte", first_byte, o.connections);
	handoff_report("parent_close", close_call, o.connections);
	handoff_report("fork", fork_call, o.connections);
	return 0;
}
