/* Subtests of readiness without epoll: poll, ppoll, select and pselect on routed sockets. */
#include "sem.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

/* Lower and upper bounds on how long a wait with a timeout may take. */
#define SEM_TIMEOUT_MS 150
#define SEM_TIMEOUT_EARLY_MS 140
#define SEM_TIMEOUT_LATE_MS 2000

static void sem_expect_timed_out(int64_t start, const char *call)
{
	int64_t took = sem_now_ms() - start;
	SEM_CHECK(took >= SEM_TIMEOUT_EARLY_MS && took < SEM_TIMEOUT_LATE_MS,
		  "%s with a %d ms timeout returned after %lld ms", call, SEM_TIMEOUT_MS,
		  (long long)took);
}

/* Fills client until EAGAIN; returns a running reader that drains it on server. */
static void sem_fill_then_drain(struct sem_pair *p, struct sem_stream *drain, uint64_t seed)
{
	sem_set_nonblocking(p->client, true);
	size_t total = sem_fill_until_eagain(p->client, seed, 0);
	*drain = (struct sem_stream){ .fd = p->server, .seed = seed, .len = total };
}

void sem_test_poll(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char text[128], got[8];
	sem_pair_open(ctx, &p);

	/* Nothing to read: the timeout runs out and revents stays 0. */
	struct pollfd pfd = { .fd = p.server, .events = POLLIN, .revents = -1 };
	int64_t start = sem_now_ms();
	SEM_EXPECT(poll(&pfd, 1, SEM_TIMEOUT_MS), 0);
	sem_expect_timed_out(start, "poll");
	SEM_MATCH(pfd.revents == 0, "revents 0x%x after a timeout", (unsigned)pfd.revents);

	/* Writable at once; only the asked-for events come back. */
	pfd = (struct pollfd){ .fd = p.client, .events = POLLOUT };
	SEM_EXPECT(poll(&pfd, 1, 0), 1);
	SEM_MATCH(pfd.revents == POLLOUT, "a fresh socket polls %s, expected POLLOUT",
		  sem_poll_text(pfd.revents, text, sizeof(text)));

	/* Data 50 ms later wakes a poll waiting 5 s, with POLLIN alone. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	pfd = (struct pollfd){ .fd = p.server, .events = POLLIN };
	start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(poll(&pfd, 1, 5000), 1);
	int64_t took = sem_now_ms() - start;
	SEM_CHECK(took >= 40 && took < 2000, "poll woke after %lld ms for data sent at 50 ms",
		  (long long)took);
	SEM_MATCH(pfd.revents == POLLIN, "revents %s, expected POLLIN",
		  sem_poll_text(pfd.revents, text, sizeof(text)));
	sem_later_send_join(&later);

	/* Several entries at once, with an ignored fd -1 and a closed fd (POLLNVAL). */
	int closed = (int)SEM_OK(dup(p.client));
	SEM_EXPECT(close(closed), 0);
	struct pollfd set[4] = {
		{ .fd = p.server, .events = POLLIN | POLLOUT },
		{ .fd = -1, .events = POLLIN, .revents = -1 },
		{ .fd = p.client, .events = POLLIN | POLLOUT },
		{ .fd = closed, .events = POLLIN },
	};
	SEM_EXPECT(poll(set, 4, 1000), 3);
	SEM_MATCH(set[0].revents == (POLLIN | POLLOUT), "server: %s",
		  sem_poll_text(set[0].revents, text, sizeof(text)));
	SEM_MATCH(set[1].revents == 0, "fd -1: revents 0x%x", (unsigned)set[1].revents);
	SEM_MATCH(set[2].revents == POLLOUT, "client: %s",
		  sem_poll_text(set[2].revents, text, sizeof(text)));
	SEM_MATCH(set[3].revents == POLLNVAL, "closed fd: %s",
		  sem_poll_text(set[3].revents, text, sizeof(text)));
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	/* Full: no POLLOUT until the peer drains. */
	struct sem_stream drain;
	sem_fill_then_drain(&p, &drain, 50);
	pfd = (struct pollfd){ .fd = p.client, .events = POLLOUT };
	start = sem_now_ms();
	SEM_EXPECT(poll(&pfd, 1, SEM_TIMEOUT_MS), 0);
	sem_expect_timed_out(start, "poll for POLLOUT on a full socket");
	sem_stream_recv_start(&drain);
	SEM_EXPECT(poll(&pfd, 1, 5000), 1);
	SEM_MATCH(pfd.revents == POLLOUT, "after draining: %s",
		  sem_poll_text(pfd.revents, text, sizeof(text)));
	sem_stream_join(&drain);

	/* The peer's SHUT_WR: POLLIN with POLLRDHUP. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	pfd = (struct pollfd){ .fd = p.server, .events = POLLIN | POLLRDHUP };
	start = sem_now_ms();
	while (poll(&pfd, 1, 2000) == 1 && pfd.revents != (POLLIN | POLLRDHUP) &&
	       sem_now_ms() - start < 2000)
		sem_sleep_ms(1);
	SEM_MATCH(pfd.revents == (POLLIN | POLLRDHUP), "after the peer's SHUT_WR: %s",
		  sem_poll_text(pfd.revents, text, sizeof(text)));
}

/* Checks that sig is blocked in this thread (a wait with a sigmask must restore the mask). */
static void sem_expect_blocked(int sig, const char *call)
{
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	SEM_CHECK(sigismember(&now, sig), "%s did not restore the signal mask", call);
}

/* The mask a wait uses: the thread's mask with SIGUSR1 unblocked. */
static void sem_mask_without_usr1(sigset_t *mask)
{
	pthread_sigmask(SIG_BLOCK, NULL, mask);
	sigdelset(mask, SIGUSR1);
}

void sem_test_ppoll(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char text[128], got[8];
	sem_pair_open(ctx, &p);

	struct pollfd pfd = { .fd = p.server, .events = POLLIN };
	struct timespec timeout = { .tv_sec = 0, .tv_nsec = SEM_TIMEOUT_MS * 1000000L };
	int64_t start = sem_now_ms();
	SEM_EXPECT(ppoll(&pfd, 1, &timeout, NULL), 0);
	sem_expect_timed_out(start, "ppoll");
	SEM_MATCH(timeout.tv_sec == 0 && timeout.tv_nsec == SEM_TIMEOUT_MS * 1000000L,
		  "ppoll changed its timeout (glibc's ppoll leaves it as it was)");

	/* No timeout: waits for data. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	sem_later_send_start(&later);
	SEM_EXPECT(ppoll(&pfd, 1, NULL, NULL), 1);
	SEM_MATCH(pfd.revents == POLLIN, "revents %s", sem_poll_text(pfd.revents, text, sizeof(text)));
	sem_later_send_join(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	/* The signal mask: SIGUSR1 is blocked except during the wait, which it interrupts. */
	sigset_t mask;
	sem_signal_count_start(SIGUSR1);
	sem_signal_block(SIGUSR1, true);
	sem_mask_without_usr1(&mask);
	struct sem_later_signal sig = { .target = pthread_self(), .sig = SIGUSR1, .delay_ms = 50 };
	sem_later_signal_start(&sig);
	SEM_EXPECT_ERRNO(ppoll(&pfd, 1, NULL, &mask), EINTR);
	SEM_MATCH(sem_signal_count(SIGUSR1) == 1, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));
	sem_later_signal_join(&sig);
	sem_expect_blocked(SIGUSR1, "ppoll");

	/* A signal already pending when ppoll starts interrupts it at once: the mask is
	 * applied atomically with the wait. */
	pthread_kill(pthread_self(), SIGUSR1);
	SEM_MATCH(sem_signal_count(SIGUSR1) == 1, "a blocked signal was delivered");
	timeout = (struct timespec){ .tv_sec = 5 };
	start = sem_now_ms();
	SEM_EXPECT_ERRNO(ppoll(&pfd, 1, &timeout, &mask), EINTR);
	SEM_CHECK(sem_now_ms() - start < 1000, "ppoll with a pending signal waited");
	SEM_MATCH(sem_signal_count(SIGUSR1) == 2, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));
	sem_expect_blocked(SIGUSR1, "ppoll");

	/* Readiness wins over the signal mask when both are there. */
	sem_send_all(p.client, "y", 1);
	sem_wait_peekable(p.server, 1, 2000);
	SEM_EXPECT(ppoll(&pfd, 1, &timeout, &mask), 1);
}

void sem_test_select(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	fd_set rfds, wfds, efds;
	char got[8];
	int nfds;
	sem_pair_open(ctx, &p);
	nfds = (p.client > p.server ? p.client : p.server) + 1;

	/* Nothing to read: 0 after the timeout, the set cleared, the timeval counted down. */
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	struct timeval tv = { .tv_sec = 0, .tv_usec = SEM_TIMEOUT_MS * 1000 };
	int64_t start = sem_now_ms();
	SEM_EXPECT(select(nfds, &rfds, NULL, NULL, &tv), 0);
	sem_expect_timed_out(start, "select");
	SEM_MATCH(!FD_ISSET(p.server, &rfds), "select left the fd in the read set on a timeout");
	SEM_MATCH(tv.tv_sec == 0 && tv.tv_usec == 0,
		  "select left the timeval at %ld.%06ld; Linux counts it down to 0",
		  (long)tv.tv_sec, (long)tv.tv_usec);

	/* Writable at once. */
	FD_ZERO(&wfds);
	FD_SET(p.client, &wfds);
	tv = (struct timeval){ .tv_sec = 1 };
	SEM_EXPECT(select(nfds, NULL, &wfds, NULL, &tv), 1);
	SEM_MATCH(FD_ISSET(p.client, &wfds), "a fresh socket is not in the write set");

	/* Data 50 ms later wakes select, which leaves what is left of the timeout in tv. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	sem_later_send_start(&later);
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	tv = (struct timeval){ .tv_sec = 5 };
	SEM_EXPECT(select(nfds, &rfds, NULL, NULL, &tv), 1);
	SEM_MATCH(FD_ISSET(p.server, &rfds), "the server is not in the read set");
	SEM_MATCH(tv.tv_sec >= 3 && tv.tv_sec < 5, "select left %ld.%06ld of a 5 s timeout "
		  "after about 50 ms", (long)tv.tv_sec, (long)tv.tv_usec);
	sem_later_send_join(&later);

	/* All three sets at once: one readable, two writable, no exceptions (no OOB data). */
	FD_ZERO(&rfds);
	FD_ZERO(&wfds);
	FD_ZERO(&efds);
	FD_SET(p.server, &rfds);
	FD_SET(p.client, &rfds);
	FD_SET(p.server, &wfds);
	FD_SET(p.client, &wfds);
	FD_SET(p.server, &efds);
	FD_SET(p.client, &efds);
	SEM_EXPECT(select(nfds, &rfds, &wfds, &efds, NULL), 3);
	SEM_MATCH(FD_ISSET(p.server, &rfds) && !FD_ISSET(p.client, &rfds), "wrong read set");
	SEM_MATCH(FD_ISSET(p.server, &wfds) && FD_ISSET(p.client, &wfds), "wrong write set");
	SEM_MATCH(!FD_ISSET(p.server, &efds) && !FD_ISSET(p.client, &efds), "wrong except set");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	/* Full: not writable until the peer drains. */
	struct sem_stream drain;
	sem_fill_then_drain(&p, &drain, 51);
	FD_ZERO(&wfds);
	FD_SET(p.client, &wfds);
	tv = (struct timeval){ .tv_usec = SEM_TIMEOUT_MS * 1000 };
	start = sem_now_ms();
	SEM_EXPECT(select(nfds, NULL, &wfds, NULL, &tv), 0);
	sem_expect_timed_out(start, "select for writing on a full socket");
	sem_stream_recv_start(&drain);
	FD_SET(p.client, &wfds);
	tv = (struct timeval){ .tv_sec = 5 };
	SEM_EXPECT(select(nfds, NULL, &wfds, NULL, &tv), 1);
	sem_stream_join(&drain);

	/* A closed fd in a set: EBADF. */
	int closed = (int)SEM_OK(dup(p.client));
	SEM_EXPECT(close(closed), 0);
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	FD_SET(closed, &rfds);
	tv = (struct timeval){ .tv_sec = 0 };
	SEM_EXPECT_ERRNO(select((closed > nfds ? closed : nfds) + 1, &rfds, NULL, NULL, &tv),
			 EBADF);
}

void sem_test_pselect(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	fd_set rfds;
	char got[8];
	sem_pair_open(ctx, &p);
	int nfds = (p.client > p.server ? p.client : p.server) + 1;

	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	struct timespec timeout = { .tv_sec = 0, .tv_nsec = SEM_TIMEOUT_MS * 1000000L };
	int64_t start = sem_now_ms();
	SEM_EXPECT(pselect(nfds, &rfds, NULL, NULL, &timeout, NULL), 0);
	sem_expect_timed_out(start, "pselect");
	SEM_MATCH(timeout.tv_sec == 0 && timeout.tv_nsec == SEM_TIMEOUT_MS * 1000000L,
		  "pselect changed its timeout (POSIX and glibc leave it as it was)");

	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	sem_later_send_start(&later);
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	fd_set wfds;
	FD_ZERO(&wfds);
	SEM_EXPECT(pselect(nfds, &rfds, &wfds, NULL, NULL, NULL), 1);
	SEM_MATCH(FD_ISSET(p.server, &rfds), "the server is not in the read set");
	sem_later_send_join(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);

	/* The signal mask, as for ppoll: applied only during the wait, atomically. */
	sigset_t mask;
	sem_signal_count_start(SIGUSR1);
	sem_signal_block(SIGUSR1, true);
	sem_mask_without_usr1(&mask);
	struct sem_later_signal sig = { .target = pthread_self(), .sig = SIGUSR1, .delay_ms = 50 };
	sem_later_signal_start(&sig);
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	SEM_EXPECT_ERRNO(pselect(nfds, &rfds, NULL, NULL, NULL, &mask), EINTR);
	SEM_MATCH(sem_signal_count(SIGUSR1) == 1, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));
	sem_later_signal_join(&sig);
	sem_expect_blocked(SIGUSR1, "pselect");

	pthread_kill(pthread_self(), SIGUSR1);
	timeout = (struct timespec){ .tv_sec = 5 };
	FD_ZERO(&rfds);
	FD_SET(p.server, &rfds);
	start = sem_now_ms();
	SEM_EXPECT_ERRNO(pselect(nfds, &rfds, NULL, NULL, &timeout, &mask), EINTR);
	SEM_CHECK(sem_now_ms() - start < 1000, "pselect with a pending signal waited");
	SEM_MATCH(sem_signal_count(SIGUSR1) == 2, "the handler ran %d times",
		  sem_signal_count(SIGUSR1));
	sem_expect_blocked(SIGUSR1, "pselect");
}
