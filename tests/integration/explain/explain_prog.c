/* A program that calls connect through its own PLT and gets its socket from a -fno-plt library. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "explain_lib.h"

int main(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(9) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = explain_lib_socket();
	if (fd < 0)
		return 1;
	int status = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
			     explain_lib_send(fd) == 1
		     ? 0
		     : 1;
	close(fd);
	return status;
}
