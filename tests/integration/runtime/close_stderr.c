/* close_stderr PORT: closes fd 2, then makes one echo round trip: its log must still arrive. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	close(STDERR_FILENO);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	char buf[4];
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || write(fd, "ping", 4) != 4 ||
	    read(fd, buf, 4) != 4 || memcmp(buf, "ping", 4) != 0) {
		printf("close_stderr FAILED\n");
		return 1;
	}
	close(fd);
	printf("close_stderr ok\n");
	return 0;
}
