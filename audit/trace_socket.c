/* The socket functions' prototypes: the X-macro's declarations plus the meaning of their ints. */
#include "trace_socket.h"

#include <string.h>

VI_SYMBOL_TABLE(trace_socket_symbols);

/*
 * What a declaration's types and names cannot say, as annotations applied to it (param NULL:
 * the return value). Everything else is inferred by the parser: an `int fd` is a descriptor,
 * an address is followed by its length, a `void *buf` followed by a size_t is a buffer.
 */
static const struct {
	const char *symbol;
	const char *param;
	const char *annotation;
} trace_socket_annotations[] = {
	{ "socket", "domain", "flags(af)" },
	{ "socket", "type", "flags(sock)" },
	{ "socket", NULL, "fd" },
	{ "accept", NULL, "fd" },
	{ "accept4", NULL, "fd" },
	{ "accept4", "flags", "flags(sock)" },
	{ "send", "flags", "flags(msg)" },
	{ "sendto", "flags", "flags(msg)" },
	{ "sendmsg", "flags", "flags(msg)" },
	{ "recv", "flags", "flags(msg)" },
	{ "recvfrom", "flags", "flags(msg)" },
	{ "recvmsg", "flags", "flags(msg)" },
	{ "__recv_chk", "flags", "flags(msg)" },
	{ "__recvfrom_chk", "flags", "flags(msg)" },
	{ "shutdown", "how", "flags(shut)" },
	{ "dup", NULL, "fd" },
	{ "dup2", NULL, "fd" },
	{ "dup3", NULL, "fd" },
	{ "dup3", "flags", "flags(open)" },
	{ "fcntl", "cmd", "flags(fcntl)" },
	{ "fcntl64", "cmd", "flags(fcntl)" },
	{ "ioctl", "request", "hex" },
	{ "getsockopt", "level", "flags(level)" },
	{ "setsockopt", "level", "flags(level)" },
	{ "epoll_create", NULL, "fd" },
	{ "epoll_create1", NULL, "fd" },
	{ "epoll_create1", "flags", "flags(open)" },
	{ "epoll_ctl", "op", "flags(epoll)" },
};

int trace_socket_id(const char *name)
{
	for (int i = 0; i < VI_SYM_COUNT; i++)
		if (strcmp(trace_socket_symbols[i].name, name) == 0)
			return i;
	return -1;
}

int trace_socket_proto(enum vi_symbol_id id, struct trace_proto *out,
		       struct trace_proto_error *err)
{
	const char *text = trace_socket_symbols[id].prototype;
	int r = trace_proto_parse(text, strlen(text), out, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(trace_socket_annotations) / sizeof(trace_socket_annotations[0]);
	     i++) {
		if (strcmp(trace_socket_annotations[i].symbol, out->name) != 0)
			continue;
		r = trace_proto_annotate(out, trace_socket_annotations[i].param,
					 trace_socket_annotations[i].annotation, err);
		if (r < 0)
			return r;
	}
	return 0;
}
