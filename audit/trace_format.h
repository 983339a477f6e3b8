/* One traced call as a line: text for people, or one JSON object for programs. */
#ifndef VI_TRACE_FORMAT_H
#define VI_TRACE_FORMAT_H

#include <stddef.h>

#include "trace_proto.h"

#define TRACE_BYTES_SHOWN 16   /* of a buffer, the first bytes shown */
#define TRACE_STRING_SHOWN 64  /* of a string, the first characters shown */
#define TRACE_LINE_MAX 2048    /* a formatted call, longer ones are cut */

/* A call that has returned, as the closure handler saw it. */
struct trace_call {
	const struct trace_proto *proto;
	const char *caller;     /* "main", a soname or a basename */
	void *const *args;      /* libffi's pointers to each argument's value */
	const void *ret;        /* the return value, as libffi stores it (small ints widened) */
	int error;              /* the program's errno after the call */
	const char *transport;  /* what served the call's descriptor ("shm", "tcp"), or NULL */
	long pid, tid;
	double duration_us;
};

/*
 * Formats `call` as "viaudit: trace: PID.TID CALLER SYMBOL(ARGS) = RET[ ERRNO][ [TRANSPORT]]
 * DURATIONus\n" into buf (NUL-terminated; a line too long is cut and still ends in "\n").
 * Returns the length stored. Memory the arguments point to is read, except after a call that
 * failed with EFAULT. Preserves errno.
 */
size_t trace_format_text(const struct trace_call *call, char *buf, size_t size);

/* The same call as one JSON object on one line (see viaudit(1), "trace"). */
size_t trace_format_json(const struct trace_call *call, char *buf, size_t size);

/* A name for errno value `error` ("ECONNREFUSED"), or its number in buf. */
const char *trace_errno_name(int error, char *buf, size_t size);

#endif
