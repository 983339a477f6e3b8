/* The socket functions' prototypes for tracing, made from the one X-macro list of symbols. */
#ifndef VI_TRACE_SOCKET_H
#define VI_TRACE_SOCKET_H

#include <viaudit/symbols.h>

#include "trace_proto.h"

/*
 * Parses the prototype of rebound symbol `id` (VI_SYMBOL_INFO's text, e.g.
 * "ssize_t send(int fd, const void *buf, size_t len, int flags)") and adds what the text
 * cannot say: which ints are flags of which kind and which results are descriptors.
 * Returns 0, or -EINVAL with `err` filled (a bug in the table, caught by the unit tests).
 */
int trace_socket_proto(enum vi_symbol_id id, struct trace_proto *out,
		       struct trace_proto_error *err);

/* The rebound symbol called `name`, or -1. */
int trace_socket_id(const char *name);

#endif
