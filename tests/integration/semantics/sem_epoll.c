/* Subtests of epoll on routed sockets: level and edge triggering, RDHUP/HUP/ERR, ONESHOT, mixed sets. */
#include "sem.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int sem_epoll_new(void)
{
	int ep = (int)SEM_OK(epoll_create1(EPOLL_CLOEXEC));
	SEM_EXPECT(fcntl(ep, F_GETFD), FD_CLOEXEC);
	return ep;
}

static void sem_epoll_add(int ep, int fd, unsigned events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	SEM_EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
}

static void sem_epoll_mod(int ep, int fd, unsigned events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	SEM_EXPECT(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
}

/* epoll_wait for at most one event; returns the count (0 or 1). */
static int sem_epoll_one(int ep, struct epoll_event *ev, int timeout_ms)
{
	int n;
	do
		n = epoll_wait(ep, ev, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	SEM_CHECK(n >= 0, "epoll_wait failed: %s", sem_errno_name(errno));
	return n;
}

/* Expects exactly one ready entry, with exactly these events and this data. */
static void sem_epoll_expect(int ep, int timeout_ms, unsigned events, uint64_t data,
			     const char *when)
{
	struct epoll_event ev;
	char got[160], want[160];
	int n = sem_epoll_one(ep, &ev, timeout_ms);
	SEM_MATCH(n == 1, "%s: epoll_wait returned %d, expected one event", when, n);
	if (n != 1)
		return;
	SEM_MATCH(ev.events == events, "%s: events %s, the kernel gives %s", when,
		  sem_epoll_text(ev.events, got, sizeof(got)),
		  sem_epoll_text(events, want, sizeof(want)));
	SEM_CHECK(ev.data.u64 == data, "%s: epoll_data 0x%llx, registered 0x%llx", when,
		  (unsigned long long)ev.data.u64, (unsigned long long)data);
}

static void sem_epoll_expect_none(int ep, int timeout_ms, const char *when)
{
	struct epoll_event ev;
	char got[160];
	int n = sem_epoll_one(ep, &ev, timeout_ms);
	SEM_MATCH(n == 0, "%s: an event (%s, data 0x%llx) where the kernel gives none", when,
		  sem_epoll_text(ev.events, got, sizeof(got)), (unsigned long long)ev.data.u64);
}

/* Waits up to timeout_ms until the one registered entry reports all of `events`. */
static unsigned sem_epoll_wait_for(int ep, unsigned events, int timeout_ms)
{
	struct epoll_event ev = { 0 };
	int64_t end = sem_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - sem_now_ms();
		int n = sem_epoll_one(ep, &ev, left > 0 ? (int)left : 0);
		if ((n == 1 && (ev.events & events) == events) || left <= 0)
			return n == 1 ? ev.events : 0;
		if (n == 1)
			sem_sleep_ms(1);
	}
}

void sem_test_epoll_level(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[16];
	const uint64_t data = 0xfeedface12345678ULL;
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN, data);

	sem_epoll_expect_none(ep, 0, "nothing sent yet");
	int64_t start = sem_now_ms();
	sem_epoll_expect_none(ep, 150, "a 150 ms wait with nothing sent");
	int64_t took = sem_now_ms() - start;
	SEM_CHECK(took >= 140 && took < 2000, "a 150 ms epoll_wait took %lld ms", (long long)took);

	sem_send_all(p.client, "0123456789", 10);
	sem_epoll_expect(ep, 2000, EPOLLIN, data, "data arrived");
	sem_epoll_expect(ep, 0, EPOLLIN, data, "data still unread (level-triggered)");
	SEM_EXPECT(recv(p.server, got, 5, 0), 5);
	sem_epoll_expect(ep, 0, EPOLLIN, data, "half the data read");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 5);
	sem_epoll_expect_none(ep, 0, "all data read");

	/* A blocked epoll_wait wakes for data sent later. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	sem_later_send_start(&later);
	sem_epoll_expect(ep, 5000, EPOLLIN, data, "data sent while waiting");
	sem_later_send_join(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	sem_epoll_mod(ep, p.server, EPOLLOUT, 2);
	sem_epoll_expect(ep, 0, EPOLLOUT, 2, "EPOLLOUT after EPOLL_CTL_MOD");
	sem_epoll_mod(ep, p.server, EPOLLIN | EPOLLOUT, 3);
	sem_send_all(p.client, "y", 1);
	sem_wait_peekable(p.server, 1, 2000);
	sem_epoll_expect(ep, 0, EPOLLIN | EPOLLOUT, 3, "both asked, both ready");

	struct epoll_event ev = { .events = EPOLLIN };
	SEM_EXPECT_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, p.server, &ev), EEXIST);
	SEM_EXPECT(epoll_ctl(ep, EPOLL_CTL_DEL, p.server, NULL), 0);
	SEM_EXPECT_ERRNO(epoll_ctl(ep, EPOLL_CTL_DEL, p.server, NULL), ENOENT);
	SEM_EXPECT_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, p.server, &ev), ENOENT);
	sem_epoll_expect_none(ep, 50, "after EPOLL_CTL_DEL");

	/* The old interface works the same. */
	int old = (int)SEM_OK(epoll_create(1));
	sem_epoll_add(old, p.client, EPOLLOUT, 4);
	sem_epoll_expect(old, 0, EPOLLOUT, 4, "epoll_create");
	close(old);
	close(ep);
}

void sem_test_epoll_edge(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN | EPOLLET, 7);

	sem_epoll_expect_none(ep, 0, "nothing sent yet");
	sem_send_all(p.client, "0123456789", 10);
	sem_epoll_expect(ep, 2000, EPOLLIN, 7, "first arrival");
	sem_epoll_expect_none(ep, 100, "no new data after the event (edge-triggered)");
	SEM_EXPECT(recv(p.server, got, 5, 0), 5);
	sem_epoll_expect_none(ep, 100, "a partial read is not an edge");
	sem_send_all(p.client, "abcdefghij", 10);
	sem_epoll_expect(ep, 2000, EPOLLIN, 7, "second arrival with data still unread");
	sem_epoll_expect_none(ep, 50, "after the second event");

	/* Drain to EAGAIN, as an edge-triggered loop does; then the next arrival is an edge. */
	sem_set_nonblocking(p.server, true);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 15);
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), 0), EAGAIN);
	sem_epoll_expect_none(ep, 50, "drained");
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "xyz", .len = 3 };
	sem_later_send_start(&later);
	sem_epoll_expect(ep, 5000, EPOLLIN, 7, "arrival while waiting");
	sem_later_send_join(&later);
	sem_epoll_expect_none(ep, 50, "after the third event");

	/* EPOLLOUT|EPOLLET: one event for "writable", not one per wait. */
	int ep2 = sem_epoll_new();
	sem_epoll_add(ep2, p.client, EPOLLOUT | EPOLLET, 8);
	sem_epoll_expect(ep2, 0, EPOLLOUT, 8, "writable at registration");
	sem_epoll_expect_none(ep2, 50, "still writable, no new edge");
	close(ep2);
	close(ep);
}

void sem_test_epoll_pwait(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	struct epoll_event ev;
	char got[8];
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN, 11);

	int64_t start = sem_now_ms();
	SEM_EXPECT(epoll_pwait(ep, &ev, 1, 150, NULL), 0);
	int64_t took = sem_now_ms() - start;
	SEM_CHECK(took >= 140 && took < 2000, "a 150 ms epoll_pwait took %lld ms", (long long)took);

	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	sem_later_send_start(&later);
	SEM_EXPECT(epoll_pwait(ep, &ev, 1, -1, NULL), 1);
	SEM_CHECK(ev.events == EPOLLIN && ev.data.u64 == 11, "epoll_pwait: events 0x%x data %llu",
		  ev.events, (unsigned long long)ev.data.u64);
	sem_later_send_join(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	/* The signal mask: applied during the wait only, atomically. */
	sigset_t mask, now;
	sem_signal_count_start(SIGUSR1);
	sem_signal_block(SIGUSR1, true);
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	sigdelset(&mask, SIGUSR1);
	struct sem_later_signal sig = { .target = pthread_self(), .sig = SIGUSR1, .delay_ms = 50 };
	sem_later_signal_start(&sig);
	SEM_EXPECT_ERRNO(epoll_pwait(ep, &ev, 1, -1, &mask), EINTR);
	SEM_MATCH(sem_signal_count(SIGUSR1) == 1, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));
	sem_later_signal_join(&sig);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	SEM_CHECK(sigismember(&now, SIGUSR1), "epoll_pwait did not restore the signal mask");

	pthread_kill(pthread_self(), SIGUSR1);
	start = sem_now_ms();
	SEM_EXPECT_ERRNO(epoll_pwait(ep, &ev, 1, 5000, &mask), EINTR);
	SEM_CHECK(sem_now_ms() - start < 1000, "epoll_pwait with a pending signal waited");
	SEM_MATCH(sem_signal_count(SIGUSR1) == 2, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));

	/* Plain epoll_wait is interrupted too (no SA_RESTART: EINTR). */
	sem_signal_block(SIGUSR1, false);
	sig = (struct sem_later_signal){ .target = pthread_self(), .sig = SIGUSR1, .delay_ms = 50 };
	sem_later_signal_start(&sig);
	SEM_EXPECT_ERRNO(epoll_wait(ep, &ev, 1, 5000), EINTR);
	sem_later_signal_join(&sig);
	close(ep);
}

void sem_test_epoll_rdhup(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	int plain = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN | EPOLLRDHUP, 12);
	sem_epoll_add(plain, p.server, EPOLLIN, 13);

	sem_send_all(p.client, "data", 4);
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_CHECK(sem_epoll_wait_for(ep, EPOLLRDHUP, 2000) & EPOLLRDHUP,
		  "no EPOLLRDHUP within 2 s of the peer's SHUT_WR");
	sem_epoll_expect(ep, 0, EPOLLIN | EPOLLRDHUP, 12, "peer SHUT_WR, data unread");
	sem_epoll_expect(plain, 0, EPOLLIN, 13, "peer SHUT_WR, EPOLLRDHUP not asked for");
	sem_recv_exact(p.server, got, 4);
	sem_epoll_expect(ep, 0, EPOLLIN | EPOLLRDHUP, 12, "peer SHUT_WR, data read");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	sem_epoll_expect(ep, 0, EPOLLIN | EPOLLRDHUP, 12, "peer SHUT_WR, EOF read");
	/* Our own direction is open: writing works and the peer reads it. */
	sem_send_all(p.server, "back", 4);
	sem_recv_exact(p.client, got, 4);
	close(plain);
	close(ep);
}

void sem_test_epoll_hup(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	int none = sem_epoll_new();
	int out = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN | EPOLLRDHUP, 14);
	sem_epoll_add(none, p.server, 0, 15);
	sem_epoll_add(out, p.server, EPOLLOUT, 16);

	/* The peer closes (its FIN), we shut our writing: both directions are closed. */
	SEM_EXPECT(close(p.client), 0);
	SEM_CHECK(sem_epoll_wait_for(ep, EPOLLRDHUP, 2000) & EPOLLRDHUP, "no EPOLLRDHUP in 2 s");
	sem_epoll_expect(ep, 0, EPOLLIN | EPOLLRDHUP, 14, "peer closed, our side open");
	sem_epoll_expect_none(none, 0, "peer closed, nothing asked for");
	SEM_EXPECT(shutdown(p.server, SHUT_WR), 0);
	sem_epoll_expect(ep, 1000, EPOLLIN | EPOLLRDHUP | EPOLLHUP, 14, "both directions closed");
	/* EPOLLHUP comes even to an entry that asked for nothing, and Linux reports EPOLLOUT on
	 * a socket whose sending side is shut (so a writer wakes and meets EPIPE). */
	sem_epoll_expect(none, 0, EPOLLHUP, 15, "both closed, nothing asked for");
	sem_epoll_expect(out, 0, EPOLLOUT | EPOLLHUP, 16, "both closed, EPOLLOUT asked for");

	/* The same when both sides only SHUT_WR. */
	struct sem_pair q;
	sem_pair_open(ctx, &q);
	int ep2 = sem_epoll_new();
	sem_epoll_add(ep2, q.client, EPOLLIN | EPOLLRDHUP, 17);
	SEM_EXPECT(shutdown(q.client, SHUT_WR), 0);
	SEM_EXPECT(shutdown(q.server, SHUT_WR), 0);
	SEM_CHECK(sem_epoll_wait_for(ep2, EPOLLHUP, 2000) & EPOLLHUP, "no EPOLLHUP in 2 s");
	sem_epoll_expect(ep2, 0, EPOLLIN | EPOLLRDHUP | EPOLLHUP, 17, "both sides SHUT_WR");
	close(ep2);
	close(out);
	close(none);
	close(ep);
}

void sem_test_epoll_reset(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	uint8_t unread[100];
	sem_pair_open(ctx, &p);
	int in = sem_epoll_new();
	int none = sem_epoll_new();
	int all = sem_epoll_new();
	sem_epoll_add(in, p.client, EPOLLIN, 21);
	sem_epoll_add(none, p.client, 0, 22);
	sem_epoll_add(all, p.client, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 23);

	/* The server closes with unread data: a reset. */
	sem_pattern_fill(unread, sizeof(unread), 41, 0);
	sem_send_all(p.client, unread, sizeof(unread));
	sem_wait_peekable(p.server, sizeof(unread), 2000);
	SEM_EXPECT(close(p.server), 0);
	SEM_CHECK(sem_epoll_wait_for(none, EPOLLERR, 2000) & EPOLLERR, "no EPOLLERR in 2 s");

	sem_epoll_expect(in, 0, EPOLLIN | EPOLLERR | EPOLLHUP, 21, "reset, EPOLLIN asked");
	sem_epoll_expect(none, 0, EPOLLERR | EPOLLHUP, 22, "reset, nothing asked");
	sem_epoll_expect(all, 0, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP, 23,
			 "reset, everything asked");
	/* Reading the error clears EPOLLERR; the hang-up stays. */
	SEM_EXPECT_ERRNO(recv(p.client, got, sizeof(got), 0), ECONNRESET);
	sem_epoll_expect(in, 0, EPOLLIN | EPOLLHUP, 21, "reset read");
	sem_epoll_expect(none, 0, EPOLLHUP, 22, "reset read, nothing asked");
	close(all);
	close(none);
	close(in);
}

void sem_test_epoll_oneshot(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN | EPOLLONESHOT, 31);

	sem_send_all(p.client, "a", 1);
	sem_epoll_expect(ep, 2000, EPOLLIN, 31, "first arrival");
	sem_epoll_expect_none(ep, 100, "disarmed after one event, data unread");
	sem_send_all(p.client, "b", 1);
	sem_epoll_expect_none(ep, 100, "disarmed, more data arrived");

	/* Re-armed with data already there: reported at once, then disarmed again. */
	sem_epoll_mod(ep, p.server, EPOLLIN | EPOLLONESHOT, 32);
	sem_epoll_expect(ep, 0, EPOLLIN, 32, "re-armed with data waiting");
	sem_epoll_expect_none(ep, 50, "disarmed again");

	/* Re-armed on an empty socket: the next arrival is reported. */
	sem_wait_peekable(p.server, 2, 2000);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 2);
	sem_epoll_mod(ep, p.server, EPOLLIN | EPOLLONESHOT, 33);
	sem_epoll_expect_none(ep, 50, "re-armed, nothing there");
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "c", .len = 1 };
	sem_later_send_start(&later);
	sem_epoll_expect(ep, 5000, EPOLLIN, 33, "re-armed, then data");
	sem_later_send_join(&later);
	sem_epoll_expect_none(ep, 50, "disarmed after the third event");
	close(ep);
}

void sem_test_epoll_mixed(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	struct epoll_event evs[8];
	char got[8];
	int pipefd[2];
	const uint64_t sock = 0x50c4e7, pipe_data = 0x919e, listener = 0x115;
	sem_pair_open(ctx, &p);
	SEM_OK(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK));
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN, sock);
	sem_epoll_add(ep, pipefd[0], EPOLLIN, pipe_data);
	sem_epoll_add(ep, p.listener, EPOLLIN, listener);
	sem_epoll_expect_none(ep, 0, "nothing ready");

	SEM_EXPECT(write(pipefd[1], "p", 1), 1);
	sem_epoll_expect(ep, 2000, EPOLLIN, pipe_data, "only the pipe ready");
	sem_send_all(p.client, "s", 1);
	sem_wait_peekable(p.server, 1, 2000);
	int n = (int)SEM_OK(epoll_wait(ep, evs, 8, 1000));
	SEM_CHECK(n == 2, "%d events with the socket and the pipe ready", n);
	SEM_CHECK((evs[0].data.u64 == sock && evs[1].data.u64 == pipe_data) ||
		  (evs[0].data.u64 == pipe_data && evs[1].data.u64 == sock),
		  "the two events carry data 0x%llx and 0x%llx",
		  (unsigned long long)evs[0].data.u64, (unsigned long long)evs[1].data.u64);
	SEM_CHECK(evs[0].events == EPOLLIN && evs[1].events == EPOLLIN, "events 0x%x and 0x%x",
		  evs[0].events, evs[1].events);

	/* One event per call: Linux moves a reported level-triggered entry to the back of the
	 * ready list, so two calls see both entries, not the same one twice. */
	SEM_EXPECT(epoll_wait(ep, &evs[0], 1, 0), 1);
	SEM_EXPECT(epoll_wait(ep, &evs[1], 1, 0), 1);
	SEM_MATCH(evs[0].data.u64 != evs[1].data.u64,
		  "two epoll_wait calls with maxevents 1 both returned 0x%llx: the other ready "
		  "entry starves", (unsigned long long)evs[0].data.u64);

	SEM_EXPECT(read(pipefd[0], got, sizeof(got)), 1);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);
	sem_epoll_expect_none(ep, 0, "both drained");

	/* A new connection makes the routed listener ready. */
	struct sem_connector c = { .ctx = ctx, .addr = &p.listen_addr, .len = p.listen_len };
	sem_connect_start(&c);
	sem_epoll_expect(ep, 5000, EPOLLIN, listener, "a connection is waiting");
	int s2 = (int)SEM_OK(accept(p.listener, NULL, NULL));
	int c2 = sem_connect_join(&c);
	sem_epoll_expect_none(ep, 0, "the connection was accepted");

	/* The accepted socket joins the set; removing the first socket stops its events. */
	sem_epoll_add(ep, s2, EPOLLIN, 0x52);
	SEM_EXPECT(epoll_ctl(ep, EPOLL_CTL_DEL, p.server, NULL), 0);
	sem_send_all(p.client, "t", 1);
	sem_send_all(c2, "u", 1);
	sem_epoll_expect(ep, 2000, EPOLLIN, 0x52, "the second socket only");
	sem_epoll_expect(ep, 0, EPOLLIN, 0x52, "the removed socket stays out");
	close(ep);
}

void sem_test_epoll_close_removes(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	sem_pair_open(ctx, &p);
	int ep = sem_epoll_new();
	sem_epoll_add(ep, p.server, EPOLLIN | EPOLLRDHUP, 41);
	sem_send_all(p.client, "x", 1);
	sem_epoll_expect(ep, 2000, EPOLLIN, 41, "data arrived");
	char got;
	SEM_EXPECT(recv(p.server, &got, 1, 0), 1);

	/* Closing the only fd removes the entry: no event about it, ever, with its old data. */
	SEM_EXPECT(close(p.server), 0);
	sem_epoll_expect_none(ep, 100, "the registered socket was closed");
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	sem_epoll_expect_none(ep, 100, "the closed socket's peer shut down");
	struct epoll_event ev = { .events = EPOLLIN };
	SEM_EXPECT_ERRNO(epoll_ctl(ep, EPOLL_CTL_DEL, p.server, &ev), EBADF);
	SEM_EXPECT_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, p.server, &ev), EBADF);
	close(ep);
}
