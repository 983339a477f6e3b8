/* The helpers every subtest of sem_check uses: checks, connections, threads, byte streams. */
#include "sem.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* Set by main: the subtest and address that failures name. */
const struct sem_ctx *sem_current;

/* ---- checks ---- */

const char *sem_errno_name(int error)
{
	const char *name = strerrorname_np(error);
	return name != NULL ? name : "E?";
}

bool sem_mismatched;

static void sem_report(const char *file, int line, const char *fmt, va_list ap)
{
	const char *base = strrchr(file, '/');
	fflush(stdout);
	fprintf(stderr, "FAIL %s %s: %s:%d: ", sem_current ? sem_current->name : "?",
		sem_current ? sem_current->address_text : "?", base ? base + 1 : file, line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void sem_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sem_report(file, line, fmt, ap);
	va_end(ap);
	_exit(1);
}

void sem_mismatch_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sem_report(file, line, fmt, ap);
	va_end(ap);
	const char *keep_going = getenv("SEM_KEEP_GOING");
	if (keep_going == NULL || strcmp(keep_going, "1") != 0)
		_exit(1);
	sem_mismatched = true;
}

void sem_note(const char *fmt, ...)
{
	va_list ap;
	printf("note: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ---- addresses and connections ---- */

const char *sem_sockaddr_text(const struct sockaddr_storage *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, size, "%s:%u", host, port);
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, size, "[%s]:%u", host, port);
	} else {
		snprintf(buf, size, "(family %d)", addr->ss_family);
	}
	return buf;
}

bool sem_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
		       x->sin6_scope_id == y->sin6_scope_id;
	}
	return false;
}

int sem_listen_on(const struct sem_ctx *ctx, struct sockaddr_storage *addr, socklen_t *len)
{
	int fd = (int)SEM_OK(socket(ctx->family, SOCK_STREAM, 0));
	SEM_OK(bind(fd, (const struct sockaddr *)&ctx->addr, ctx->addr_len));
	SEM_OK(listen(fd, 64));
	*len = sizeof(*addr);
	SEM_OK(getsockname(fd, (struct sockaddr *)addr, len));
	return fd;
}

/*
 * Connects from its own thread, so that a transport whose connect waits for the accepting
 * side (a door handshake) cannot deadlock the subtest.
 */
static void *sem_connector_main(void *arg)
{
	struct sem_connector *c = arg;
	c->fd = (int)SEM_OK(socket(c->ctx->family, SOCK_STREAM | c->flags, 0));
	int r = connect(c->fd, (const struct sockaddr *)c->addr, c->len);
	if (r < 0 && errno == EINPROGRESS) {
		/* A SOCK_NONBLOCK connector: wait for the handshake, then read its result. */
		int error = 0;
		socklen_t elen = sizeof(error);
		SEM_CHECK(sem_wait_events(c->fd, POLLOUT, 5000) & POLLOUT,
			  "non-blocking connect did not complete in 5 s");
		SEM_OK(getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &elen));
		SEM_CHECK(error == 0, "non-blocking connect failed: %s", sem_errno_name(error));
		r = 0;
	}
	SEM_CHECK(r == 0, "connect failed: %s", sem_errno_name(errno));
	return NULL;
}

void sem_connect_start(struct sem_connector *c)
{
	c->fd = -1;
	c->thread = sem_thread_start(sem_connector_main, c);
}

int sem_connect_join(struct sem_connector *c)
{
	sem_thread_join(c->thread);
	return c->fd;
}

static int sem_accept_one(int listener, struct sockaddr_storage *addr, socklen_t *len,
			  int accept_flags)
{
	*len = sizeof(*addr);
	if (accept_flags < 0)
		return (int)SEM_OK(accept(listener, (struct sockaddr *)addr, len));
	return (int)SEM_OK(accept4(listener, (struct sockaddr *)addr, len, accept_flags));
}

void sem_pair_open_flags(const struct sem_ctx *ctx, struct sem_pair *pair, int socket_flags,
			 int accept_flags)
{
	memset(pair, 0, sizeof(*pair));
	pair->listener = sem_listen_on(ctx, &pair->listen_addr, &pair->listen_len);
	struct sem_connector c = {
		.ctx = ctx, .addr = &pair->listen_addr, .len = pair->listen_len,
		.flags = socket_flags, .fd = -1,
	};
	sem_connect_start(&c);
	pair->server = sem_accept_one(pair->listener, &pair->accepted_addr, &pair->accepted_len,
				      accept_flags);
	pair->client = sem_connect_join(&c);
}

void sem_pair_open(const struct sem_ctx *ctx, struct sem_pair *pair)
{
	sem_pair_open_flags(ctx, pair, 0, -1);
}

void sem_pair_connect_more(const struct sem_ctx *ctx, const struct sem_pair *pair, int *client,
			   int *server)
{
	struct sockaddr_storage addr;
	socklen_t len;
	struct sem_connector c = {
		.ctx = ctx, .addr = &pair->listen_addr, .len = pair->listen_len, .fd = -1,
	};
	sem_connect_start(&c);
	*server = sem_accept_one(pair->listener, &addr, &len, -1);
	*client = sem_connect_join(&c);
}

/* ---- time, threads, signals ---- */

int64_t sem_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sem_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

pthread_t sem_thread_start(void *(*fn)(void *), void *arg)
{
	pthread_t thread;
	int r = pthread_create(&thread, NULL, fn, arg);
	SEM_CHECK(r == 0, "pthread_create: %s", sem_errno_name(r));
	return thread;
}

void *sem_thread_join(pthread_t thread)
{
	void *result = NULL;
	int r = pthread_join(thread, &result);
	SEM_CHECK(r == 0, "pthread_join: %s", sem_errno_name(r));
	return result;
}

static void *sem_later_send_main(void *arg)
{
	struct sem_later_send *job = arg;
	int pieces = job->pieces > 0 ? job->pieces : 1;
	size_t piece = job->len / (size_t)pieces;
	const char *p = job->buf;
	for (int i = 0; i < pieces; i++) {
		size_t n = i == pieces - 1 ? job->len - piece * (size_t)(pieces - 1) : piece;
		sem_sleep_ms(job->delay_ms);
		sem_send_all(job->fd, p, n);
		p += n;
	}
	return NULL;
}

void sem_later_send_start(struct sem_later_send *job)
{
	job->thread = sem_thread_start(sem_later_send_main, job);
}

void sem_later_send_join(struct sem_later_send *job)
{
	sem_thread_join(job->thread);
}

static void *sem_later_signal_main(void *arg)
{
	struct sem_later_signal *job = arg;
	sem_sleep_ms(job->delay_ms);
	int r = pthread_kill(job->target, job->sig);
	SEM_CHECK(r == 0, "pthread_kill: %s", sem_errno_name(r));
	return NULL;
}

void sem_later_signal_start(struct sem_later_signal *job)
{
	job->thread = sem_thread_start(sem_later_signal_main, job);
}

void sem_later_signal_join(struct sem_later_signal *job)
{
	sem_thread_join(job->thread);
}

static void *sem_watchdog_main(void *arg)
{
	struct sem_watchdog *dog = arg;
	pthread_mutex_lock(&dog->lock);
	while (!dog->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += dog->after_ms / 1000;
		until.tv_nsec += (long)(dog->after_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&dog->wake, &dog->lock, &until) == ETIMEDOUT &&
		    !dog->stop)
			pthread_kill(dog->target, SIGUSR2);
	}
	pthread_mutex_unlock(&dog->lock);
	return NULL;
}

void sem_watchdog_start(struct sem_watchdog *dog)
{
	sem_signal_count_start(SIGUSR2);
	pthread_mutex_init(&dog->lock, NULL);
	pthread_cond_init(&dog->wake, NULL);
	dog->stop = false;
	dog->target = pthread_self();
	dog->thread = sem_thread_start(sem_watchdog_main, dog);
}

void sem_watchdog_stop(struct sem_watchdog *dog)
{
	pthread_mutex_lock(&dog->lock);
	dog->stop = true;
	pthread_cond_signal(&dog->wake);
	pthread_mutex_unlock(&dog->lock);
	sem_thread_join(dog->thread);
	pthread_cond_destroy(&dog->wake);
	pthread_mutex_destroy(&dog->lock);
}

static volatile sig_atomic_t sem_signal_counts[65];

static void sem_signal_counter(int sig)
{
	if (sig > 0 && sig < 65)
		sem_signal_counts[sig]++;
}

void sem_signal_count_start(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sem_signal_counter;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: an interrupted wait must say EINTR */
	SEM_OK(sigaction(sig, &sa, NULL));
	sem_signal_counts[sig] = 0;
}

int sem_signal_count(int sig)
{
	return sem_signal_counts[sig];
}

void sem_signal_block(int sig, bool block)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	int r = pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
	SEM_CHECK(r == 0, "pthread_sigmask: %s", sem_errno_name(r));
}

/* ---- bytes ---- */

/* splitmix64: 8 bytes of stream `seed` at word index `word`. */
static uint64_t sem_pattern_word(uint64_t seed, uint64_t word)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + word * 0xd1b54a32d192ed03ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void sem_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t pos)
{
	uint8_t *out = buf;
	size_t i = 0;
	while (i < len) {
		uint64_t word = sem_pattern_word(seed, (pos + i) >> 3);
		unsigned k = (unsigned)((pos + i) & 7);
		if (k == 0 && len - i >= 8) {
			memcpy(out + i, &word, 8);
			i += 8;
			continue;
		}
		uint8_t bytes[8];
		memcpy(bytes, &word, 8);
		for (; k < 8 && i < len; k++)
			out[i++] = bytes[k];
	}
}

size_t sem_pattern_find_mismatch(const void *buf, size_t len, uint64_t seed, uint64_t pos)
{
	static __thread uint8_t expect[65536];
	const uint8_t *in = buf;
	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(expect) ? len - done : sizeof(expect);
		sem_pattern_fill(expect, n, seed, pos + done);
		if (memcmp(expect, in + done, n) != 0) {
			for (size_t i = 0; i < n; i++)
				if (expect[i] != in[done + i])
					return done + i;
		}
		done += n;
	}
	return len;
}

void sem_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		SEM_CHECK(n > 0, "send of %zu bytes on fd %d returned %zd (%s)", len, fd, n,
			  n < 0 ? sem_errno_name(errno) : "-");
		p += n;
		len -= (size_t)n;
	}
}

void sem_recv_exact(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		SEM_CHECK(n >= 0, "recv on fd %d failed: %s", fd, sem_errno_name(errno));
		SEM_CHECK(n > 0, "recv on fd %d: EOF with %zu bytes still expected", fd, len);
		p += n;
		len -= (size_t)n;
	}
}

void sem_send_pattern(int fd, uint64_t seed, uint64_t pos, size_t len)
{
	static __thread uint8_t chunk[65536];
	while (len > 0) {
		size_t n = len < sizeof(chunk) ? len : sizeof(chunk);
		sem_pattern_fill(chunk, n, seed, pos);
		sem_send_all(fd, chunk, n);
		pos += n;
		len -= n;
	}
}

void sem_recv_pattern(int fd, uint64_t seed, uint64_t pos, size_t len)
{
	static __thread uint8_t chunk[65536];
	while (len > 0) {
		size_t want = len < sizeof(chunk) ? len : sizeof(chunk);
		ssize_t n = recv(fd, chunk, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		SEM_CHECK(n >= 0, "recv on fd %d failed: %s", fd, sem_errno_name(errno));
		SEM_CHECK(n > 0, "recv on fd %d: EOF with %zu bytes of the stream still expected", fd,
			  len);
		size_t bad = sem_pattern_find_mismatch(chunk, (size_t)n, seed, pos);
		SEM_CHECK(bad == (size_t)n, "stream %llu: wrong byte at offset %llu",
			  (unsigned long long)seed, (unsigned long long)(pos + bad));
		pos += (uint64_t)n;
		len -= (size_t)n;
	}
}

size_t sem_fill_until_eagain(int fd, uint64_t seed, int extra_flags)
{
	static __thread uint8_t chunk[65536];
	size_t total = 0;
	for (;;) {
		SEM_CHECK(total < ((size_t)512 << 20),
			  "sent 512 MiB without EAGAIN on fd %d: the socket never filled", fd);
		sem_pattern_fill(chunk, sizeof(chunk), seed, total);
		ssize_t n = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL | extra_flags);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			SEM_CHECK(errno == EAGAIN, "filling fd %d: send failed with %s, expected EAGAIN",
				  fd, sem_errno_name(errno));
			return total;
		}
		SEM_CHECK(n > 0, "send returned 0");
		total += (size_t)n;
	}
}

void sem_wait_peekable(int fd, size_t len, int timeout_ms)
{
	char *scratch = malloc(len);
	SEM_CHECK(scratch != NULL, "out of memory");
	int64_t end = sem_now_ms() + timeout_ms;
	for (;;) {
		ssize_t n = recv(fd, scratch, len, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0 && (size_t)n >= len) {
			free(scratch);
			return;
		}
		SEM_CHECK(n != 0, "EOF while waiting for %zu bytes", len);
		SEM_CHECK(n > 0 || errno == EAGAIN || errno == EINTR,
			  "recv(MSG_PEEK|MSG_DONTWAIT) failed: %s", sem_errno_name(errno));
		SEM_CHECK(sem_now_ms() < end, "only %zd of %zu bytes arrived within %d ms", n, len,
			  timeout_ms);
		sem_sleep_ms(1);
	}
}

static void *sem_stream_send_main(void *arg)
{
	struct sem_stream *job = arg;
	size_t max = job->max_chunk ? job->max_chunk : 65536;
	uint8_t *chunk = malloc(max);
	SEM_CHECK(chunk != NULL, "out of memory");
	uint64_t pos = 0, rng = job->seed | 1;
	while (pos < job->len) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t n = 1 + (size_t)(rng % max);
		if (n > job->len - pos)
			n = job->len - pos;
		sem_pattern_fill(chunk, n, job->seed, pos);
		sem_send_all(job->fd, chunk, n);
		pos += n;
	}
	free(chunk);
	return NULL;
}

static void *sem_stream_recv_main(void *arg)
{
	struct sem_stream *job = arg;
	size_t max = job->max_chunk ? job->max_chunk : 65536;
	uint8_t *chunk = malloc(max);
	SEM_CHECK(chunk != NULL, "out of memory");
	uint64_t pos = 0, rng = (job->seed * 7) | 1;
	while (pos < job->len) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t want = 1 + (size_t)(rng % max);
		if (want > job->len - pos)
			want = job->len - pos;
		ssize_t n = recv(job->fd, chunk, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		SEM_CHECK(n >= 0, "stream %llu: recv failed: %s", (unsigned long long)job->seed,
			  sem_errno_name(errno));
		SEM_CHECK(n > 0, "stream %llu: EOF after %llu of %zu bytes",
			  (unsigned long long)job->seed, (unsigned long long)pos, job->len);
		size_t bad = sem_pattern_find_mismatch(chunk, (size_t)n, job->seed, pos);
		SEM_CHECK(bad == (size_t)n, "stream %llu: wrong byte at offset %llu",
			  (unsigned long long)job->seed, (unsigned long long)(pos + bad));
		pos += (uint64_t)n;
	}
	free(chunk);
	return NULL;
}

void sem_stream_send_start(struct sem_stream *job)
{
	job->thread = sem_thread_start(sem_stream_send_main, job);
}

void sem_stream_recv_start(struct sem_stream *job)
{
	job->thread = sem_thread_start(sem_stream_recv_main, job);
}

void sem_stream_join(struct sem_stream *job)
{
	sem_thread_join(job->thread);
}

/* ---- descriptors ---- */

void sem_set_nonblocking(int fd, bool on)
{
	int flags = (int)SEM_OK(fcntl(fd, F_GETFL));
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	SEM_OK(fcntl(fd, F_SETFL, flags));
}

bool sem_is_nonblocking(int fd)
{
	return (SEM_OK(fcntl(fd, F_GETFL)) & O_NONBLOCK) != 0;
}

short sem_poll_one(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	SEM_CHECK(r >= 0, "poll failed: %s", sem_errno_name(errno));
	return r == 0 ? 0 : p.revents;
}

short sem_wait_events(int fd, short events, int timeout_ms)
{
	int64_t end = sem_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - sem_now_ms();
		short revents = sem_poll_one(fd, events, left > 0 ? (int)left : 0);
		if ((revents & events) == events || left <= 0)
			return revents;
		if (revents != 0)
			sem_sleep_ms(1); /* some of the events, not all: look again shortly */
	}
}

const char *sem_poll_text(int revents, char *buf, size_t size)
{
	static const struct {
		int bit;
		const char *name;
	} names[] = {
		{ POLLIN, "POLLIN" }, { POLLPRI, "POLLPRI" }, { POLLOUT, "POLLOUT" },
		{ POLLERR, "POLLERR" }, { POLLHUP, "POLLHUP" }, { POLLNVAL, "POLLNVAL" },
		{ POLLRDNORM, "POLLRDNORM" }, { POLLRDBAND, "POLLRDBAND" },
		{ POLLWRNORM, "POLLWRNORM" }, { POLLWRBAND, "POLLWRBAND" }, { POLLRDHUP, "POLLRDHUP" },
	};
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(revents & names[i].bit))
			continue;
		int n = snprintf(buf + used, size - used, "%s%s", used ? "|" : "", names[i].name);
		if (n > 0 && (size_t)n < size - used)
			used += (size_t)n;
		revents &= ~names[i].bit;
	}
	if (revents)
		snprintf(buf + used, size - used, "%s0x%x", used ? "|" : "", (unsigned)revents);
	else if (used == 0)
		snprintf(buf, size, "0");
	return buf;
}

const char *sem_epoll_text(unsigned events, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ EPOLLIN, "EPOLLIN" }, { EPOLLPRI, "EPOLLPRI" }, { EPOLLOUT, "EPOLLOUT" },
		{ EPOLLERR, "EPOLLERR" }, { EPOLLHUP, "EPOLLHUP" }, { EPOLLRDNORM, "EPOLLRDNORM" },
		{ EPOLLRDBAND, "EPOLLRDBAND" }, { EPOLLWRNORM, "EPOLLWRNORM" },
		{ EPOLLWRBAND, "EPOLLWRBAND" }, { EPOLLRDHUP, "EPOLLRDHUP" },
	};
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(events & names[i].bit))
			continue;
		int n = snprintf(buf + used, size - used, "%s%s", used ? "|" : "", names[i].name);
		if (n > 0 && (size_t)n < size - used)
			used += (size_t)n;
		events &= ~names[i].bit;
	}
	if (events)
		snprintf(buf + used, size - used, "%s0x%x", used ? "|" : "", events);
	else if (used == 0)
		snprintf(buf, size, "0");
	return buf;
}
