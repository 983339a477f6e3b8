/* A fixed sequence of socket calls, compiled into each trace test object so that the calls are its own. */
#include "trace_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int trace_client_run(const char *who, const char *port_text)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port_text)) };
	char reply[5];
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		fprintf(stderr, "%s: socket/connect: %s\n", who, strerror(errno));
		return -1;
	}
	if (send(fd, "hello", 5, MSG_NOSIGNAL) != 5 || recv(fd, reply, 5, MSG_WAITALL) != 5 ||
	    memcmp(reply, "hello", 5) != 0) {
		fprintf(stderr, "%s: echo failed: %s\n", who, strerror(errno));
		close(fd);
		return -1;
	}
	if (shutdown(fd, SHUT_WR) != 0 || close(fd) != 0) {
		fprintf(stderr, "%s: shutdown/close: %s\n", who, strerror(errno));
		return -1;
	}
	if (send(-1, "x", 1, 0) != -1 || errno != EBADF) {
		fprintf(stderr, "%s: send(-1) did not fail with EBADF\n", who);
		return -1;
	}
	return 0;
}
