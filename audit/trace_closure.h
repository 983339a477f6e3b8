/* Trace closures: executable stand-ins for traced functions that log each call and pass it on. */
#ifndef VI_TRACE_CLOSURE_H
#define VI_TRACE_CLOSURE_H

#include <ffi.h>
#include <stdbool.h>

#include "trace_proto.h"

/* How calls are written; set once before the first closure is made. */
struct trace_output {
	bool json;                           /* one JSON object per line instead of text */
	const char *(*describe_fd)(int fd);  /* what serves fd ("shm", "tcp"), or NULL; may be NULL */
};

extern struct trace_output trace_output;

/* One traced binding: (calling object, symbol) -> target, through a libffi closure. */
struct trace_closure {
	ffi_closure *closure;         /* the writable side, for ffi_closure_free */
	void *code;                   /* the executable address a binding is given */
	ffi_cif cif;
	const struct trace_proto *proto;
	void *target;                 /* what the binding would have been without tracing */
	const char *caller;           /* display name of the calling object */
	const void *caller_pc;        /* an address inside the calling object */
};

/*
 * Makes `c` a closure that, when called as `proto` says, calls `target` with the same
 * arguments (ffi_call), writes one line about the call to the log channel, and returns the
 * target's result with the program's errno as the target left it. `proto` must outlive the
 * closure. Returns 0 or -errno (-ENOMEM, -EINVAL when libffi refuses the prototype).
 */
int trace_closure_create(struct trace_closure *c, const struct trace_proto *proto, void *target,
			 const char *caller, const void *caller_pc);

void trace_closure_destroy(struct trace_closure *c);

/*
 * While a closure's target runs on this thread: the caller_pc of the innermost closure,
 * else NULL. A target that finds its caller by return address (routing decisions) sees
 * libffi instead, and asks this.
 */
const void *trace_closure_caller_pc(void);

#endif
