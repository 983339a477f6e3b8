/* Socket addresses as text, for logs: "127.0.0.1:5432", "[::1]:6379". */
#ifndef VI_SOCKADDR_H
#define VI_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define SOCKADDR_TEXT_MAX 64

/* Formats addr into buf (always NUL-terminated); returns buf. Preserves errno. */
char *sockaddr_format(const struct sockaddr *addr, socklen_t len, char *buf, size_t size);

#endif
