/*
 * The closure handler: a traced call arrives here through libffi, is passed on to its
 * target with ffi_call, timed, and written to the log channel as one line. Calls that are
 * not traced never come here: their bindings are what ld.so (or routing) made.
 */
#include "trace_closure.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libc.h>
#include <log.h>

#include "trace_format.h"

struct trace_output trace_output;

/* The innermost traced caller of this thread, for targets that look at their return address. */
static __thread const void *trace_current_caller_pc;

const void *trace_closure_caller_pc(void)
{
	return trace_current_caller_pc;
}

/* The program's errno: not this module's, which lives in its own copy of libc. */
static int *trace_errno_location(void)
{
	return vi_libc.errno_location != NULL ? vi_libc.errno_location() : &errno;
}

static int trace_int_argument(const ffi_type *t, const void *p)
{
	switch (t->size) {
	case 1: return *(const int8_t *)p;
	case 2: return *(const int16_t *)p;
	case 4: return *(const int32_t *)p;
	default: return (int)*(const int64_t *)p;
	}
}

/* What serves the first descriptor argument that viaudit carries, or NULL. */
static const char *trace_transport_of_args(const struct trace_proto *proto, void **args)
{
	for (unsigned i = 0; i < proto->nfixed; i++) {
		if (proto->args[i].kind != TRACE_KIND_FD)
			continue;
		const char *t = trace_output.describe_fd(trace_int_argument(proto->args[i].type, args[i]));
		if (t != NULL)
			return t;
	}
	return NULL;
}

/* After the call: a descriptor it returned, else one it was given, else what served it before (close). */
static const char *trace_transport_after(const struct trace_proto *proto, void **args,
					 const void *ret, const char *before)
{
	if (proto->ret.kind == TRACE_KIND_FD) {
		int fd = (int)*(const ffi_sarg *)ret;
		const char *t = fd >= 0 ? trace_output.describe_fd(fd) : NULL;
		if (t != NULL)
			return t;
	}
	const char *t = trace_transport_of_args(proto, args);
	return t != NULL ? t : before;
}

static double trace_elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 + (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

static void trace_closure_handler(ffi_cif *cif, void *ret, void **args, void *data)
{
	const struct trace_closure *c = data;
	const struct trace_proto *proto = c->proto;
	const char *before = trace_output.describe_fd ? trace_transport_of_args(proto, args) : NULL;
	const void *outer = trace_current_caller_pc;
	struct timespec start, end;

	trace_current_caller_pc = c->caller_pc;
	clock_gettime(CLOCK_MONOTONIC, &start);
	ffi_call(cif, FFI_FN(c->target), ret, args);
	clock_gettime(CLOCK_MONOTONIC, &end);
	trace_current_caller_pc = outer;

	/* The program's errno as the target left it; logging below must not change it. */
	int *program_errno = trace_errno_location();
	int error = *program_errno;
	struct trace_call call = {
		.proto = proto,
		.caller = c->caller,
		.args = args,
		.ret = ret,
		.error = error,
		.transport = trace_output.describe_fd ? trace_transport_after(proto, args, ret, before)
						      : NULL,
		.pid = (long)getpid(),
		.tid = (long)gettid(),
		.duration_us = trace_elapsed_us(&start, &end),
	};
	char line[TRACE_LINE_MAX];
	size_t n = trace_output.json ? trace_format_json(&call, line, sizeof(line))
				     : trace_format_text(&call, line, sizeof(line));
	vi_log_write(line, n);
	*program_errno = error;
}

int trace_closure_create(struct trace_closure *c, const struct trace_proto *proto, void *target,
			 const char *caller, const void *caller_pc)
{
	ffi_status status;
	ffi_type **types = (ffi_type **)proto->types; /* libffi only reads them */

	memset(c, 0, sizeof(*c));
	c->proto = proto;
	c->target = target;
	c->caller = caller;
	c->caller_pc = caller_pc;
	if (proto->variadic)
		status = ffi_prep_cif_var(&c->cif, FFI_DEFAULT_ABI, proto->nfixed, proto->nargs,
					  proto->ret.type, types);
	else
		status = ffi_prep_cif(&c->cif, FFI_DEFAULT_ABI, proto->nargs, proto->ret.type, types);
	if (status != FFI_OK)
		return -EINVAL;
	c->closure = ffi_closure_alloc(sizeof(ffi_closure), &c->code);
	if (c->closure == NULL)
		return -ENOMEM;
	if (ffi_prep_closure_loc(c->closure, &c->cif, trace_closure_handler, c, c->code) != FFI_OK) {
		ffi_closure_free(c->closure);
		c->closure = NULL;
		return -EINVAL;
	}
	return 0;
}

void trace_closure_destroy(struct trace_closure *c)
{
	if (c->closure != NULL)
		ffi_closure_free(c->closure);
	c->closure = NULL;
	c->code = NULL;
}
