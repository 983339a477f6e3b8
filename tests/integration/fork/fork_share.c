/* fork_share: parent and child write one connection at the same time; the peer checks that every record arrives whole, once, and in each writer's order. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * A record is 64 bytes, written with one send(): the writer (1 parent, 2 child), its
 * sequence number, and a filler that depends on both, so a torn or mixed record shows.
 */
#define SHARE_RECORD 64

static void share_usage(FILE *out)
{
	fprintf(out,
		"usage: fork_share server PORT_FILE RECORDS\n"
		"       fork_share client PORT RECORDS\n"
		"  server: accept one connection, fork; parent and child each send RECORDS records\n"
		"    of %d bytes (one send() each) at the same time, then each closes its copy.\n"
		"  client: read to the EOF; every record must be whole, each writer's records in\n"
		"    order with none missing or repeated. Prints \"client: parent=N child=N ok\".\n"
		"  Exit 0 when right, 1 otherwise, 2 on bad usage.\n",
		SHARE_RECORD);
}

static void share_fill(uint8_t *r, uint8_t writer, uint32_t seq)
{
	r[0] = writer;
	memcpy(r + 1, &seq, sizeof(seq));
	for (int i = 5; i < SHARE_RECORD; i++)
		r[i] = (uint8_t)(writer * 31 + seq * 7 + (uint32_t)i);
}

static int share_send_all(int fd, uint8_t writer, uint32_t records)
{
	uint8_t r[SHARE_RECORD];
	for (uint32_t seq = 0; seq < records; seq++) {
		share_fill(r, writer, seq);
		ssize_t n;
		do
			n = send(fd, r, sizeof(r), MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(r)) {
			fprintf(stderr, "fork_share: writer %u: send returned %zd (%s)\n", writer, n,
				n < 0 ? strerror(errno) : "short");
			return 1;
		}
	}
	return 0;
}

static int share_server(const char *port_file, uint32_t records)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0) {
		perror("fork_share: listen");
		return 1;
	}
	FILE *f = fopen(port_file, "w");
	if (f == NULL || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0) {
		perror("fork_share: port file");
		return 1;
	}
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		perror("fork_share: accept");
		return 1;
	}
	close(l);
	pid_t child = fork();
	if (child < 0) {
		perror("fork_share: fork");
		return 1;
	}
	int r = share_send_all(c, child == 0 ? 2 : 1, records);
	close(c);
	if (child == 0)
		_exit(r);
	int status;
	waitpid(child, &status, 0);
	return r != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static int share_client(int port, uint32_t records)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("fork_share: connect");
		return 1;
	}
	uint32_t next[3] = { 0, 0, 0 };
	uint8_t r[SHARE_RECORD], want[SHARE_RECORD];
	uint64_t offset = 0;
	for (;;) {
		size_t have = 0;
		while (have < sizeof(r)) {
			ssize_t n = recv(s, r + have, sizeof(r) - have, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				printf("client: error %s at offset %llu\n", strerror(errno),
				       (unsigned long long)(offset + have));
				return 1;
			}
			if (n == 0)
				break;
			have += (size_t)n;
		}
		if (have == 0)
			break;
		if (have < sizeof(r)) {
			printf("client: EOF inside a record at offset %llu\n", (unsigned long long)offset);
			return 1;
		}
		uint8_t writer = r[0];
		uint32_t seq;
		memcpy(&seq, r + 1, sizeof(seq));
		if (writer < 1 || writer > 2 || seq != next[writer]) {
			printf("client: record at offset %llu: writer %u seq %u, expected seq %u\n",
			       (unsigned long long)offset, writer, seq, writer <= 2 ? next[writer] : 0);
			return 1;
		}
		share_fill(want, writer, seq);
		if (memcmp(r, want, sizeof(r)) != 0) {
			printf("client: record at offset %llu is torn\n", (unsigned long long)offset);
			return 1;
		}
		next[writer]++;
		offset += sizeof(r);
	}
	printf("client: parent=%u child=%u %s\n", next[1], next[2],
	       next[1] == records && next[2] == records ? "ok" : "MISSING");
	return next[1] == records && next[2] == records ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "server") == 0)
		return share_server(argv[2], (uint32_t)strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "client") == 0)
		return share_client(atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 10));
	share_usage(argc > 1 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
	return argc > 1 && strcmp(argv[1], "-h") == 0 ? 0 : 2;
}
