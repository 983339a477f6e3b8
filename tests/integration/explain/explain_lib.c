/* A library built with -fno-plt, so `viaudit explain` must report its socket imports as GOT slots. */
#include "explain_lib.h"

#include <sys/socket.h>

int explain_lib_socket(void)
{
	return socket(AF_INET, SOCK_STREAM, 0);
}

ssize_t explain_lib_send(int fd)
{
	return send(fd, "x", 1, 0);
}
