/* fork_exec: a server whose child execs while the connection is open, with or without close-on-exec; the client times the end of the stream. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes the server sends; byte N is (N * 7 + 3) mod 251, so a lost or moved byte shows. */
#define FORK_EXEC_BYTES 200000

static void fork_exec_usage(FILE *out)
{
	fprintf(out,
		"usage: fork_exec server PORT_FILE CLOEXEC HOLD_SECONDS\n"
		"       fork_exec client PORT\n"
		"  server: listen on 127.0.0.1, write the port to PORT_FILE, accept one connection,\n"
		"    set close-on-exec on it when CLOEXEC is 1, fork a child that execs\n"
		"    `sleep HOLD_SECONDS` without touching it, send %d bytes, close, reap the child.\n"
		"  client: connect to 127.0.0.1:PORT, read and check every byte up to the EOF, and\n"
		"    print \"client: bytes=N eof_ms=M\": M, the time from the last byte to the EOF.\n"
		"  Exit 0 when every byte was right, 1 otherwise, 2 on bad usage.\n",
		FORK_EXEC_BYTES);
}

static uint8_t fork_exec_byte(uint64_t n)
{
	return (uint8_t)((n * 7 + 3) % 251);
}

static long long fork_exec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fork_exec_server(const char *port_file, int cloexec, const char *hold)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0) {
		perror("fork_exec: listen");
		return 1;
	}
	FILE *f = fopen(port_file, "w");
	if (f == NULL || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0) {
		perror("fork_exec: port file");
		return 1;
	}
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		perror("fork_exec: accept");
		return 1;
	}
	close(l);
	if (cloexec && fcntl(c, F_SETFD, FD_CLOEXEC) < 0) {
		perror("fork_exec: FD_CLOEXEC");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fork_exec: fork");
		return 1;
	}
	if (child == 0) {
		execlp("sleep", "sleep", hold, (char *)NULL);
		_exit(127);
	}
	uint8_t buf[8192];
	for (uint64_t sent = 0; sent < FORK_EXEC_BYTES;) {
		size_t n = FORK_EXEC_BYTES - sent < sizeof(buf) ? FORK_EXEC_BYTES - sent : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = fork_exec_byte(sent + i);
		ssize_t w = write(c, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("fork_exec: write");
			return 1;
		}
		sent += (uint64_t)w;
	}
	close(c);
	int status;
	waitpid(child, &status, 0);
	printf("server: sent=%d, child exited %d\n", FORK_EXEC_BYTES,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int fork_exec_client(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("fork_exec: connect");
		return 1;
	}
	uint8_t buf[8192];
	uint64_t got = 0;
	long long last = fork_exec_now_ms();
	for (;;) {
		ssize_t n = read(s, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			printf("client: bytes=%llu error %s\n", (unsigned long long)got, strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != fork_exec_byte(got + (uint64_t)i)) {
				printf("client: mismatch at offset %llu\n",
				       (unsigned long long)(got + (uint64_t)i));
				return 1;
			}
		got += (uint64_t)n;
		last = fork_exec_now_ms();
	}
	printf("client: bytes=%llu eof_ms=%lld\n", (unsigned long long)got, fork_exec_now_ms() - last);
	return got == FORK_EXEC_BYTES ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "server") == 0)
		return fork_exec_server(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 3 && strcmp(argv[1], "client") == 0)
		return fork_exec_client(atoi(argv[2]));
	fork_exec_usage(argc > 1 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
	return argc > 1 && strcmp(argv[1], "-h") == 0 ? 0 : 2;
}
