/* The policy language: parse a policy file, report its errors, and answer routing questions. */
#ifndef VIAUDIT_POLICY_H
#define VIAUDIT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* How a route carries a connection (TRANSPORT in `route`). */
enum vi_transport {
	VI_TRANSPORT_KERNEL, /* do not rebind */
	VI_TRANSPORT_TCP,    /* viaudit session over kernel TCP */
	VI_TRANSPORT_SHM,    /* same host, shared memory */
	VI_TRANSPORT_VERBS,  /* RDMA verbs */
	VI_TRANSPORT_AUTO,   /* shm, else verbs, else tcp */
};

/* PROTO in `route`. */
enum vi_proto {
	VI_PROTO_ANY,
	VI_PROTO_TCP,  /* TCP over IPv4 or IPv6 */
	VI_PROTO_TCP4,
	VI_PROTO_TCP6,
	VI_PROTO_UDP,
};

/* fallback= in `route`. */
enum vi_fallback {
	VI_FALLBACK_TCP,
	VI_FALLBACK_ERROR,
};

/* CALLER in `route` and `trace`. */
enum vi_caller_kind {
	VI_CALLER_ANY,         /* `*` */
	VI_CALLER_MAIN,        /* `main`: the executable */
	VI_CALLER_SONAME_GLOB, /* `libpq.so.*`: DT_SONAME, or the file's basename without one */
	VI_CALLER_PATH_GLOB,   /* an absolute path glob such as /opt/app/lib/x.so: the object's absolute path */
};

/* A place in a policy file, for messages. */
struct vi_position {
	const char *file; /* owned by the policy */
	unsigned line;
	unsigned col;
};

struct vi_caller {
	enum vi_caller_kind kind;
	const char *pattern; /* the text as written; NULL for VI_CALLER_ANY and VI_CALLER_MAIN */
	struct vi_position pos;
};

/* ENDPOINT: `*`, or HOST[/PREFIX][:PORTS]. */
struct vi_endpoint {
	bool any_host;      /* `*` or HOST `*` */
	int family;         /* AF_INET or AF_INET6 when !any_host */
	uint8_t addr[16];   /* network order; 4 bytes used for AF_INET */
	unsigned prefix;    /* 0..32 or 0..128 */
	uint16_t port_lo;   /* `*` is 0..65535 */
	uint16_t port_hi;
};

struct vi_route {
	struct vi_position pos;   /* where the `route` keyword is */
	const char *program;      /* the `program` glob in force; "*" at the top */
	struct vi_caller caller;
	enum vi_proto proto;
	struct vi_endpoint endpoint;
	enum vi_transport transport;
	enum vi_fallback fallback;
	unsigned reconnect_ms;    /* 0 = report errors as TCP does */
};

struct vi_trace {
	struct vi_position pos;
	const char *program;
	struct vi_caller caller;
	size_t nsymbols;
	const char *const *symbols;
	const struct vi_position *symbol_pos; /* one per symbol */
};

/* The `set` knobs, with their defaults filled in when not set. */
struct vi_settings {
	size_t ring_size;      /* bytes per direction, a power of two; default 1 MiB */
	long spin_us;          /* -1 = sized to the machine (the default) */
	bool strict;           /* exit 127 before main on policy errors */
	unsigned log;          /* VI_LOG_* bits from `set log routes,conns` */
	bool allow_other_uids; /* `set door_peers any`: doors accept other uids */
	const char *prototypes; /* `set prototypes PATH`: a prototype file for tracing, or NULL */
};

enum vi_log_bits {
	VI_LOG_ROUTES = 1u << 0,
	VI_LOG_CONNS = 1u << 1,
	VI_LOG_CALLS = 1u << 2,
	VI_LOG_DEBUG = 1u << 3,
	VI_LOG_TRACE = 1u << 4, /* the policy's `trace` rules are in force (viaudit trace) */
};

enum vi_severity {
	VI_SEVERITY_ERROR,
	VI_SEVERITY_WARNING,
};

struct vi_diagnostic {
	struct vi_position pos;
	enum vi_severity severity;
	const char *message; /* no position, no trailing newline */
};

struct vi_policy {
	const char *file;
	size_t nroutes;
	const struct vi_route *routes;   /* in file order: first match wins */
	size_t ntraces;
	const struct vi_trace *traces;
	struct vi_settings settings;
	size_t ndiagnostics;
	const struct vi_diagnostic *diagnostics; /* errors and warnings, in file order */
	size_t nerrors;                          /* how many of them are errors */
};

/*
 * Parses `len` bytes of policy text named `file` (for messages). Every error of the text is
 * recorded, not only the first. Returns NULL only when out of memory; a policy with errors
 * is returned with nerrors > 0.
 */
struct vi_policy *vi_policy_parse(const char *text, size_t len, const char *file);

/*
 * Reads and parses the file at `path`. A file that cannot be read gives a policy with one
 * error (position line 0) saying why. Returns NULL only when out of memory.
 */
struct vi_policy *vi_policy_load(const char *path);

void vi_policy_free(struct vi_policy *policy);

/*
 * Formats one diagnostic as "FILE:LINE:COL: error: MESSAGE\n" ("warning:" for a warning;
 * "FILE: error: MESSAGE\n" at line 0) into buf, NUL-terminated; a line too long for buf is
 * cut and still ends in '\n'. Returns the number of bytes stored before the NUL.
 */
size_t vi_diagnostic_format(const struct vi_diagnostic *d, char *buf, size_t size);

/* Writes every diagnostic, formatted, to fd. */
void vi_policy_print_diagnostics(const struct vi_policy *policy, int fd);

/* An object as routing sees it. */
struct vi_object {
	bool is_main;       /* the executable */
	const char *path;   /* absolute path, or "" when unknown */
	const char *soname; /* DT_SONAME, or NULL */
};

/* Name used for an object in messages: "main", its soname, or its path's basename. */
const char *vi_object_display_name(const struct vi_object *object);

bool vi_caller_matches(const struct vi_caller *caller, const struct vi_object *object);

/* Whether `program` (the executable's basename) is in a rule's `program` scope. */
bool vi_program_matches(const char *glob, const char *program);

/*
 * The first route for a call by `object` in `program` on protocol `proto` (VI_PROTO_TCP4,
 * VI_PROTO_TCP6 or VI_PROTO_UDP) to or at `addr`. `addr` may be NULL when not known yet
 * (at `socket`): then only routes whose endpoint is `*` can match, and routes with a
 * narrower endpoint make the answer "maybe" (see vi_policy_may_route). `is_bind` says the
 * address is a local (bound) one: a wildcard bind address matches every HOST.
 * Returns NULL when no route matches (= kernel).
 */
const struct vi_route *vi_policy_match_route(const struct vi_policy *policy, const char *program,
					     const struct vi_object *object, enum vi_proto proto,
					     const struct sockaddr *addr, socklen_t addrlen,
					     bool is_bind);

/*
 * Whether some call by `object` in `program` could be routed to a transport other than
 * kernel by this policy (used at bind time: objects that never could keep libc's
 * functions). First match wins: a rule for this object with PROTO `*` and ENDPOINT `*`
 * ends the search.
 */
bool vi_policy_may_route(const struct vi_policy *policy, const char *program,
			 const struct vi_object *object);

/* Whether any trace rule of `program` names `symbol` for `object`. */
const struct vi_trace *vi_policy_match_trace(const struct vi_policy *policy, const char *program,
					     const struct vi_object *object, const char *symbol);

/* Names for messages: "shm", "tcp4", ... */
const char *vi_transport_name(enum vi_transport t);
const char *vi_proto_name(enum vi_proto p);

/* fnmatch-style glob (`*`, `?`, `[...]`) without locale or allocation; safe in ld.so context. */
bool vi_glob_match(const char *pattern, const char *text);

#endif
