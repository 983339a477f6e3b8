/* Both ends of the stat test's connections: a server that answers and holds, a client that sends exact byte counts and then waits. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * stat_peer serve PORTFILE REPLY
 *     Listens on 127.0.0.1 (a port the kernel picks), writes "PORT PID" to PORTFILE, then
 *     gives each connection a thread that writes REPLY bytes and reads until EOF. Runs until
 *     killed, its threads blocked in accept or read.
 * stat_peer client READYFILE PORT:SEND:RECV... [--fork PORT:SEND:EXTRA] [--exec PROG ARGS...]
 *     For each PORT:SEND:RECV: connects to 127.0.0.1:PORT, writes exactly SEND bytes, reads
 *     exactly RECV bytes, and keeps the connection open. Then:
 *       --fork: forks; the child connects to PORT and writes SEND bytes on the new connection
 *         and EXTRA bytes on the first inherited one, writes its PID to READYFILE.child, and
 *         waits;
 *       --exec: execs PROG (same PID, the connections left open);
 *     writes its PID to READYFILE and waits in pause() until killed.
 * Files are written whole (a temporary file renamed), so a reader never sees half a line.
 */

_Noreturn static void die(const char *what)
{
	fprintf(stderr, "stat_peer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_file(const char *path, const char *text)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		die(path);
}

static void write_all(int fd, size_t count)
{
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	while (count > 0) {
		ssize_t n = write(fd, buf, count < sizeof(buf) ? count : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		count -= (size_t)n;
	}
}

static void read_exactly(int fd, size_t count)
{
	char buf[4096];
	while (count > 0) {
		ssize_t n = read(fd, buf, count < sizeof(buf) ? count : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0) {
			fprintf(stderr, "stat_peer: early EOF, %zu bytes missing\n", count);
			exit(1);
		}
		count -= (size_t)n;
	}
}

static int connect_port(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("connect");
	return fd;
}

/* One accepted connection: its thread answers, then reads until EOF. */
struct held {
	int fd;
	size_t reply;
};

static void *hold(void *arg)
{
	struct held *h = arg;
	write_all(h->fd, h->reply);
	char buf[4096];
	ssize_t n;
	while ((n = read(h->fd, buf, sizeof(buf))) != 0)
		if (n < 0 && errno != EINTR)
			break;
	close(h->fd);
	free(h);
	return NULL;
}

_Noreturn static void serve(const char *portfile, size_t reply)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		die("listen");
	char text[64];
	snprintf(text, sizeof(text), "%u %d\n", ntohs(sin.sin_port), (int)getpid());
	write_file(portfile, text);
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0)
			die("accept");
		struct held *h = malloc(sizeof(*h));
		pthread_t thread;
		if (h == NULL)
			die("malloc");
		h->fd = c;
		h->reply = reply;
		if ((errno = pthread_create(&thread, NULL, hold, h)) != 0)
			die("pthread_create");
		pthread_detach(thread);
	}
}

static void parse_spec(const char *spec, unsigned *port, size_t *a, size_t *b)
{
	if (sscanf(spec, "%u:%zu:%zu", port, a, b) != 3) {
		fprintf(stderr, "stat_peer: bad PORT:N:N '%s'\n", spec);
		exit(2);
	}
}

_Noreturn static void client(int argc, char **argv)
{
	const char *readyfile = argv[2];
	int first_fd = -1;
	int i = 3;
	for (; i < argc && strncmp(argv[i], "--", 2) != 0; i++) {
		unsigned port;
		size_t send_bytes, recv_bytes;
		parse_spec(argv[i], &port, &send_bytes, &recv_bytes);
		int fd = connect_port(port);
		write_all(fd, send_bytes);
		read_exactly(fd, recv_bytes);
		if (first_fd < 0)
			first_fd = fd;
	}
	char text[64];
	if (i + 1 < argc && strcmp(argv[i], "--fork") == 0) {
		unsigned port;
		size_t send_bytes, extra;
		parse_spec(argv[i + 1], &port, &send_bytes, &extra);
		pid_t child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			int fd = connect_port(port);
			write_all(fd, send_bytes);
			if (first_fd >= 0)
				write_all(first_fd, extra);
			char path[4096];
			snprintf(path, sizeof(path), "%s.child", readyfile);
			snprintf(text, sizeof(text), "%d\n", (int)getpid());
			write_file(path, text);
			for (;;)
				pause();
		}
	}
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	write_file(readyfile, text);
	if (i + 1 < argc && strcmp(argv[i], "--exec") == 0) {
		execvp(argv[i + 1], argv + i + 1);
		die("exec");
	}
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		serve(argv[2], strtoul(argv[3], NULL, 10));
	if (argc >= 3 && strcmp(argv[1], "client") == 0)
		client(argc, argv);
	fputs("usage: stat_peer serve PORTFILE REPLY | client READYFILE PORT:SEND:RECV... "
	      "[--fork PORT:SEND:EXTRA] [--exec PROG ARGS...]\n",
	      stderr);
	return 2;
}
