/* The interpose layer's face to the audit layer: the rebound functions and the route question. */
#ifndef VI_INTERPOSE_H
#define VI_INTERPOSE_H

#include <stdbool.h>
#include <sys/socket.h>
#include <viaudit/policy.h>
#include <viaudit/symbols.h>

#include <shm.h>

/* The audit layer's answer to "how is this call routed?". */
struct vi_route_choice {
	const struct vi_route *route; /* the first matching rule, or NULL (= kernel) */
	const char *caller;           /* display name of the calling object, for logs */
};

struct vi_interpose_hooks {
	/* Knobs for the shared-memory transport, from the policy's `set` lines. */
	struct shm_options shm;
	/*
	 * Chooses the route for a creation call made by the code at `caller_pc` on `proto`
	 * to (connect) or at (listen, is_bind) `addr`. Never fails: no route is an answer.
	 */
	void (*route)(const void *caller_pc, enum vi_proto proto, const struct sockaddr *addr,
		      socklen_t addrlen, bool is_bind, struct vi_route_choice *out);
};

/* Sets up the virtual socket table and the hooks. Returns 0 or -errno. Call once. */
int vi_interpose_init(const struct vi_interpose_hooks *hooks);

/* The replacement for symbol `id` (never NULL). */
void *vi_interpose_function(enum vi_symbol_id id);

/* What carries virtual socket fd ("shm", "tcp"), or NULL when fd is not virtual (tracing). */
const char *vi_interpose_describe_fd(int fd);

#endif
