/* Prototypes for tracing: C declarations parsed into libffi types and a way to show each argument. */
#ifndef VI_TRACE_PROTO_H
#define VI_TRACE_PROTO_H

#include <ffi.h>
#include <stdbool.h>
#include <stddef.h>

#define TRACE_NAME_MAX 128 /* a symbol or parameter name, with its NUL */
#define TRACE_ARGS_MAX 12  /* parameters of one function, `...` included */
#define TRACE_LEN_RETURN (-1) /* len_arg: the length is the return value */

/* How one argument (or the return value) is shown in a trace line. */
enum trace_kind {
	TRACE_KIND_VOID,     /* a return value of void */
	TRACE_KIND_INT,      /* signed decimal */
	TRACE_KIND_UINT,     /* unsigned decimal */
	TRACE_KIND_HEX,      /* hexadecimal: the variadic word of fcntl/ioctl, `hex` */
	TRACE_KIND_POINTER,  /* an address, or NULL */
	TRACE_KIND_DOUBLE,   /* float or double */
	TRACE_KIND_FD,       /* a descriptor: decimal, and the transport behind it */
	TRACE_KIND_FLAGS,    /* names from the table `flags` (MSG_NOSIGNAL|MSG_DONTWAIT) */
	TRACE_KIND_STRING,   /* a NUL-terminated string */
	TRACE_KIND_BUF,      /* bytes: a length from argument len_arg or the return value */
	TRACE_KIND_SOCKADDR, /* a socket address; its length in argument len_arg (a value or a pointer) */
	TRACE_KIND_LEN_OUT,  /* a socklen_t *: the value it points to after the call */
	TRACE_KIND_IOV,      /* an array of struct iovec; its count in argument len_arg */
	TRACE_KIND_MSG,      /* a struct msghdr * */
};

/* The tables of names for TRACE_KIND_FLAGS, as `flags(KIND)` names them. */
enum trace_flags {
	TRACE_FLAGS_MSG,   /* MSG_*: send and recv flags */
	TRACE_FLAGS_SOCK,  /* SOCK_*: socket type, accept4 flags */
	TRACE_FLAGS_AF,    /* AF_*: address family (socket domain) */
	TRACE_FLAGS_SHUT,  /* SHUT_*: shutdown's how */
	TRACE_FLAGS_OPEN,  /* O_*: dup3, epoll_create1 */
	TRACE_FLAGS_FCNTL, /* F_*: fcntl commands */
	TRACE_FLAGS_EPOLL, /* EPOLL_CTL_*: epoll_ctl operations */
	TRACE_FLAGS_LEVEL, /* SOL_SOCKET, IPPROTO_*: socket option levels */
	TRACE_FLAGS_COUNT,
};

struct trace_arg {
	char name[TRACE_NAME_MAX]; /* as declared, or "argN" (1-based) when unnamed */
	ffi_type *type;            /* how libffi passes it */
	enum trace_kind kind;
	enum trace_flags flags;    /* TRACE_KIND_FLAGS */
	int len_arg;               /* BUF, SOCKADDR, IOV: index of the length argument, or TRACE_LEN_RETURN */
};

/* One function as the tracer calls it. */
struct trace_proto {
	char name[TRACE_NAME_MAX];
	struct trace_arg ret;
	unsigned nargs;   /* every parameter, the variadic word included */
	unsigned nfixed;  /* parameters before `...`; == nargs when not variadic */
	bool variadic;    /* `...`: one more word is taken and passed on (fcntl, ioctl) */
	struct trace_arg args[TRACE_ARGS_MAX];
	ffi_type *types[TRACE_ARGS_MAX]; /* args[i].type, in the array ffi_prep_cif wants */
};

/* Where a declaration went wrong: a 1-based column and a message without position. */
struct trace_proto_error {
	unsigned col;
	char message[192];
};

/*
 * Parses one declaration, `[ANNOTATION] TYPE NAME(PARAMETERS)` with an optional `;`, from
 * `len` bytes of `text` (one line, no newline). Parameters without an annotation get a
 * kind from their type and name (an `int fd` is a descriptor, `const struct sockaddr *`
 * followed by a socklen_t is an address of that length, ...). Returns 0, or -EINVAL with
 * `err` filled.
 */
int trace_proto_parse(const char *text, size_t len, struct trace_proto *out,
		      struct trace_proto_error *err);

/*
 * Gives parameter `param` (or the return value when `param` is NULL) the kind that
 * `annotation` names, as if it had been written before it ("flags(msg)", "fd"). Used for
 * the socket functions' table, whose declarations come from the X-macro without
 * annotations. Returns 0, or -EINVAL with `err` filled (err->col counts in `annotation`).
 */
int trace_proto_annotate(struct trace_proto *proto, const char *param, const char *annotation,
			 struct trace_proto_error *err);

/*
 * Called once per diagnostic of a prototype file: "FILE:LINE:COL: error: MESSAGE" (or
 * "warning:"), without a newline.
 */
typedef void trace_proto_report_fn(void *context, const char *line);

/*
 * Parses a prototype file's text, one declaration per line; `#` and `//` start comments.
 * Every error is reported, not only the first. A file with an error yields no prototypes
 * (*protos NULL, *count 0), so that a half-understood file traces nothing. A later
 * declaration of the same name replaces an earlier one, with a warning. *protos is
 * malloc'ed (free it). Returns the number of errors, or -ENOMEM.
 */
int trace_proto_parse_file(const char *text, size_t len, const char *file,
			   struct trace_proto **protos, size_t *count,
			   trace_proto_report_fn *report, void *context);

/* The name `flags(KIND)` gives a table ("msg"), for messages. */
const char *trace_flags_name(enum trace_flags flags);

#endif
