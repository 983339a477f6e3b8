/* One echo round trip to 127.0.0.1, compiled into every routing test object so that its socket calls are that object's own. */
#include "via_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VIA_CHUNK_SIZE 4096
#define VIA_CHUNK_COUNT 16

/* Parses a TCP port number; returns it, or -1 when the text is not one. */
static int via_client_parse_port(const char *text)
{
	char *end;
	long port;

	errno = 0;
	port = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || port <= 0 || port > 65535)
		return -1;
	return (int)port;
}

/* Fills CHUNK with bytes that depend on the caller, the chunk's place and each byte's place. */
static void via_client_fill(unsigned char *chunk, const char *who, unsigned index)
{
	unsigned seed = index * 40503u;

	for (const char *c = who; *c != '\0'; c++)
		seed = seed * 31u + (unsigned char)*c;
	for (unsigned i = 0; i < VIA_CHUNK_SIZE; i++)
		chunk[i] = (unsigned char)(seed + i * 7u + (i >> 8));
}

/* Sends all LENGTH bytes; returns 0, or -1 with errno set. */
static int via_client_send_all(int fd, const unsigned char *data, size_t length,
			       via_send_fn send_fn)
{
	while (length > 0) {
		/* A NULL send_fn calls send() directly, so the object's own PLT or GOT slot is used. */
		ssize_t n = send_fn != NULL ? send_fn(fd, data, length, MSG_NOSIGNAL)
					    : send(fd, data, length, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		length -= (size_t)n;
	}
	return 0;
}

/* Receives exactly LENGTH bytes; returns 0, or -1 with errno set (0 for an early EOF). */
static int via_client_receive_all(int fd, unsigned char *data, size_t length)
{
	while (length > 0) {
		ssize_t n = recv(fd, data, length, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = 0;
		if (n <= 0)
			return -1;
		data += n;
		length -= (size_t)n;
	}
	return 0;
}

int via_client_round_trip(const char *who, const char *port_text, via_send_fn send_fn)
{
	static unsigned char sent[VIA_CHUNK_SIZE], received[VIA_CHUNK_SIZE];
	struct sockaddr_in address = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int port = via_client_parse_port(port_text);
	int fd;

	if (port < 0) {
		fprintf(stderr, "%s: '%s' is not a port\n", who, port_text);
		return -1;
	}
	address.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", who, strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
		fprintf(stderr, "%s: connect to 127.0.0.1:%d: %s\n", who, port, strerror(errno));
		close(fd);
		return -1;
	}
	for (unsigned index = 0; index < VIA_CHUNK_COUNT; index++) {
		via_client_fill(sent, who, index);
		memset(received, 0, sizeof(received));
		if (via_client_send_all(fd, sent, sizeof(sent), send_fn) < 0) {
			fprintf(stderr, "%s: send of chunk %u: %s\n", who, index, strerror(errno));
			close(fd);
			return -1;
		}
		if (via_client_receive_all(fd, received, sizeof(received)) < 0) {
			fprintf(stderr, "%s: recv of chunk %u: %s\n", who, index,
				errno != 0 ? strerror(errno) : "early end of stream");
			close(fd);
			return -1;
		}
		if (memcmp(sent, received, sizeof(sent)) != 0) {
			fprintf(stderr, "%s: chunk %u came back changed\n", who, index);
			close(fd);
			return -1;
		}
	}
	if (close(fd) < 0) {
		fprintf(stderr, "%s: close: %s\n", who, strerror(errno));
		return -1;
	}
	return 0;
}
