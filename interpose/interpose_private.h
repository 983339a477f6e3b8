/* What interpose/'s files share: the hooks, the errno edge, and the connection lookup. */
#ifndef VI_INTERPOSE_PRIVATE_H
#define VI_INTERPOSE_PRIVATE_H

#include <libc.h>
#include <transport.h>

#include "interpose.h"
#include "vsock.h"

extern struct vi_interpose_hooks interpose_hooks;

/*
 * Every replacement, declared from the one list so a signature that drifts fails to build
 * (calls.c defines the data, descriptor and creation calls, readiness.c the waits).
 */
#define VI_WRAP_DECLARE(name, class, ret, params, args) ret vi_wrap_##name params;
VI_SYMBOLS(VI_WRAP_DECLARE)
#undef VI_WRAP_DECLARE

/* The one place a -errno result becomes -1 and the *program's* errno. */
static inline long interpose_return(long r)
{
	if (r < 0) {
		vi_libc_set_errno((int)-r);
		return -1;
	}
	return r;
}

/* The virtual socket behind fd when it is a connected stream, else NULL. */
static inline struct vsock *interpose_stream(int fd)
{
	struct vsock *vs = vsock_get(fd);
	if (__builtin_expect(vs == NULL, 1) || vs->kind != VSOCK_STREAM)
		return NULL;
	return vs;
}

/* Whether readiness of fd must be asked of its endpoint rather than the kernel. */
static inline struct vsock *interpose_polled(int fd)
{
	struct vsock *vs = interpose_stream(fd);
	return vs != NULL && vs->conn.ops->poll != NULL ? vs : NULL;
}

/* epoll.c: forgets an epoll set's records when its fd is closed. */
void readiness_forget_epoll(int epfd);

/* readiness.c: the clock and the spin shared by poll/select and epoll. */
long long readiness_now_ns(void);
/* Milliseconds left until `deadline` (absolute CLOCK_MONOTONIC ns, -1: none), for a timeout. */
int readiness_left_ms(long long deadline);
/* The spin before sleeping, in ns: the policy's spin_us, else sized to the machine. */
long readiness_spin_ns(void);
/* Tells the spin how long a wait that did not end at once lasted (readiness.c). */
void readiness_spin_learn(long long waited_ns);
/* The spin's periodic yield; false when another thread wanted this CPU (stop spinning). */
bool readiness_spin_yield(void);
/* An absolute deadline from a poll-style timeout in ms (-1: none, 0: now). */
long long deadline_from_ms(int timeout);

#endif
