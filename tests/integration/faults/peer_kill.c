/* peer_kill: one end of a connection SIGKILLs the other and measures how soon its own blocked read, or its write loop, fails. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "fault_util.h"

/* The most the survivor may wait for its read or write to fail after the kill. */
#define PEER_KILL_LIMIT_MS 1000.0
/* After this long a blocked call is given up on (SIGALRM interrupts it): a hang. */
#define PEER_KILL_HANG_S 5
#define PEER_KILL_SETUP_MS 10000

enum peer_role { ROLE_VICTIM, ROLE_READER, ROLE_WRITER };

static void peer_kill_usage(FILE *out)
{
	fprintf(out,
		"usage: peer_kill server PORT_FILE ROLE\n"
		"       peer_kill client PORT ROLE\n"
		"  One connection on 127.0.0.1 (the server writes \"PORT PID\" to PORT_FILE). The two\n"
		"  ends first swap their pids over it. ROLE:\n"
		"    victim  block in read() until killed;\n"
		"    reader  block in read() while another thread SIGKILLs the peer; the read must\n"
		"            return 0 or fail with ECONNRESET within 1 s of the kill;\n"
		"    writer  SIGKILL the peer, then write() in a loop (SIGPIPE ignored) until it fails\n"
		"            with EPIPE or ECONNRESET, which must be within 1 s of the kill.\n"
		"  Prints what happened and how long it took; exit 0 when it met the limit, else 1.\n");
}

static void peer_kill_on_alarm(int sig)
{
	(void)sig; /* only to interrupt a blocked call with EINTR */
}

/* Arms a SIGALRM (without SA_RESTART) that interrupts a call blocked PEER_KILL_HANG_S. */
static void peer_kill_arm_hang_alarm(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = peer_kill_on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(PEER_KILL_HANG_S);
}

/* Swaps pids with the peer over FD (8 bytes each way). Returns the peer's pid or -errno. */
static long peer_kill_swap_pids(int fd)
{
	uint8_t mine[8], theirs[8];
	uint64_t pid = (uint64_t)getpid(), peer = 0;
	int r;

	for (int i = 0; i < 8; i++)
		mine[i] = (uint8_t)(pid >> (8 * i));
	r = fault_write_full(fd, mine, sizeof mine, PEER_KILL_SETUP_MS);
	if (r == 0)
		r = fault_read_full(fd, theirs, sizeof theirs, PEER_KILL_SETUP_MS);
	if (r < 0)
		return r;
	for (int i = 0; i < 8; i++)
		peer |= (uint64_t)theirs[i] << (8 * i);
	if (peer <= 1 || peer > (uint64_t)INT32_MAX)
		return -EPROTO;
	return (long)peer;
}

struct peer_killer {
	pid_t peer;
	pid_t reader_tid;
	_Atomic double killed_at; /* CLOCK_MONOTONIC ms; 0 until the kill */
	int kill_error;
};

/* Whether thread TID of this process is asleep in the kernel (state S in its stat). */
static bool peer_kill_thread_sleeps(pid_t tid)
{
	char path[64], line[512], *close_paren;
	FILE *f;
	bool sleeping = false;

	snprintf(path, sizeof path, "/proc/self/task/%ld/stat", (long)tid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	if (fgets(line, sizeof line, f) != NULL && (close_paren = strrchr(line, ')')) != NULL)
		sleeping = close_paren[1] == ' ' && close_paren[2] == 'S';
	fclose(f);
	return sleeping;
}

/* The killer thread of a reader: once the reader sleeps in read(), SIGKILL the peer. */
static void *peer_kill_thread(void *arg)
{
	struct peer_killer *k = arg;
	double give_up = fault_now_ms() + 3000;

	/* Let the reader get into read(), and past any spinning, before the kill. */
	fault_sleep_ms(200);
	while (!peer_kill_thread_sleeps(k->reader_tid) && fault_now_ms() < give_up)
		fault_sleep_ms(5);
	if (!peer_kill_thread_sleeps(k->reader_tid))
		printf("note: the reading thread is not asleep before the kill\n");
	k->killed_at = fault_now_ms();
	if (kill(k->peer, SIGKILL) < 0)
		k->kill_error = errno;
	return NULL;
}

static int peer_kill_victim(int fd)
{
	char byte;
	ssize_t n;

	printf("victim: blocking in read\n");
	n = read(fd, &byte, 1);
	/* Only the kill should end this: whatever read returns is a failure of the test. */
	printf("victim: read returned %zd (%s) before the kill\n", n,
	       n < 0 ? fault_errno_name(errno) : "data or EOF");
	return FAULT_EXIT_FAILED;
}

static int peer_kill_reader(int fd, pid_t peer)
{
	struct peer_killer k = { .peer = peer, .reader_tid = gettid() };
	pthread_t thread;
	double returned_at, elapsed, killed_at;
	char byte;
	ssize_t n;
	int error, r;

	r = pthread_create(&thread, NULL, peer_kill_thread, &k);
	if (r != 0) {
		printf("reader: pthread_create: %s\n", strerror(r));
		return FAULT_EXIT_FAILED;
	}
	peer_kill_arm_hang_alarm();
	n = read(fd, &byte, 1);
	error = errno;
	returned_at = fault_now_ms();
	alarm(0);
	pthread_join(thread, NULL);
	killed_at = k.killed_at;
	if (k.kill_error != 0) {
		printf("reader: kill(%ld): %s\n", (long)peer, strerror(k.kill_error));
		return FAULT_EXIT_FAILED;
	}
	if (killed_at == 0 || returned_at < killed_at) {
		printf("reader: read returned %zd (%s) before the peer was killed\n", n,
		       n < 0 ? fault_errno_name(error) : "data or EOF");
		return FAULT_EXIT_FAILED;
	}
	elapsed = returned_at - killed_at;
	if (n < 0 && error == EINTR) {
		printf("reader: read still blocked %.1f ms after the kill (hang)\n", elapsed);
		return FAULT_EXIT_FAILED;
	}
	if (n > 0) {
		printf("reader: read returned data after the kill (%.1f ms)\n", elapsed);
		return FAULT_EXIT_FAILED;
	}
	printf("reader: read returned %zd (%s) %.1f ms after the kill\n", n,
	       n == 0 ? "EOF" : fault_errno_name(error), elapsed);
	if (n < 0 && error != ECONNRESET)
		return FAULT_EXIT_FAILED;
	return elapsed <= PEER_KILL_LIMIT_MS ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}

static int peer_kill_writer(int fd, pid_t peer)
{
	static char buf[4096];
	unsigned long long accepted = 0;
	double killed_at, failed_at;
	ssize_t n;
	int error = 0;

	signal(SIGPIPE, SIG_IGN);
	memset(buf, 'w', sizeof buf);
	killed_at = fault_now_ms();
	if (kill(peer, SIGKILL) < 0) {
		printf("writer: kill(%ld): %s\n", (long)peer, strerror(errno));
		return FAULT_EXIT_FAILED;
	}
	peer_kill_arm_hang_alarm();
	for (;;) {
		n = write(fd, buf, sizeof buf);
		if (n < 0) {
			error = errno;
			break;
		}
		accepted += (unsigned long long)n;
	}
	failed_at = fault_now_ms();
	alarm(0);
	if (error == EINTR) {
		printf("writer: write still blocked %.1f ms after the kill (hang)\n",
		       failed_at - killed_at);
		return FAULT_EXIT_FAILED;
	}
	printf("writer: write failed with %s %.1f ms after the kill (%llu bytes taken after it)\n",
	       fault_errno_name(error), failed_at - killed_at, accepted);
	if (error != EPIPE && error != ECONNRESET)
		return FAULT_EXIT_FAILED;
	return failed_at - killed_at <= PEER_KILL_LIMIT_MS ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}

static int peer_kill_run(int fd, enum peer_role role)
{
	long peer = peer_kill_swap_pids(fd);

	if (peer < 0) {
		printf("pid exchange failed: %s\n", fault_errno_name((int)-peer));
		return FAULT_EXIT_FAILED;
	}
	printf("peer pid %ld\n", peer);
	switch (role) {
	case ROLE_VICTIM: return peer_kill_victim(fd);
	case ROLE_READER: return peer_kill_reader(fd, (pid_t)peer);
	case ROLE_WRITER: return peer_kill_writer(fd, (pid_t)peer);
	}
	return FAULT_EXIT_FAILED;
}

static int peer_kill_parse_role(const char *text, enum peer_role *role)
{
	if (strcmp(text, "victim") == 0)
		*role = ROLE_VICTIM;
	else if (strcmp(text, "reader") == 0)
		*role = ROLE_READER;
	else if (strcmp(text, "writer") == 0)
		*role = ROLE_WRITER;
	else
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	enum peer_role role;
	uint64_t port;
	unsigned bound;
	int fd, listen_fd, r;

	if (argc != 4 || peer_kill_parse_role(argv[3], &role) < 0) {
		peer_kill_usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc == 2 ? FAULT_EXIT_OK : FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "server") == 0) {
		listen_fd = fault_listen_loopback(1, &bound);
		if (listen_fd < 0) {
			printf("listen: %s\n", fault_errno_name(-listen_fd));
			return FAULT_EXIT_FAILED;
		}
		r = fault_write_port_file(argv[2], bound);
		if (r < 0) {
			printf("%s: %s\n", argv[2], strerror(-r));
			return FAULT_EXIT_FAILED;
		}
		do
			fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		while (fd < 0 && errno == EINTR);
		if (fd < 0) {
			printf("accept: %s\n", fault_errno_name(errno));
			return FAULT_EXIT_FAILED;
		}
		close(listen_fd);
	} else if (strcmp(argv[1], "client") == 0 &&
		   fault_parse_u64(argv[2], 1, 65535, &port) == 0) {
		fd = fault_connect_loopback((unsigned)port);
		if (fd < 0) {
			printf("connect: %s\n", fault_errno_name(-fd));
			return FAULT_EXIT_FAILED;
		}
	} else {
		peer_kill_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	return peer_kill_run(fd, role);
}
