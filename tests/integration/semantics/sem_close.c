/* Subtests of a connection's ends: EOF, shutdown of each half, reset by close, EPIPE, SIGPIPE, SO_ERROR. */
#include "sem.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* The events poll reports on fd right now, out of IN|OUT|RDHUP (plus ERR|HUP|NVAL always). */
static short sem_poll_state(int fd)
{
	return sem_poll_one(fd, POLLIN | POLLOUT | POLLRDHUP, 0);
}

static void sem_expect_poll_state(int fd, short expected, const char *when)
{
	char got[128], want[128];
	short revents = sem_poll_state(fd);
	SEM_MATCH(revents == expected, "%s: poll says %s, the kernel says %s", when,
		  sem_poll_text(revents, got, sizeof(got)),
		  sem_poll_text(expected, want, sizeof(want)));
}

/* Makes the server end close with 100 unread bytes, which resets the connection. */
static void sem_reset_by_close(struct sem_pair *p)
{
	uint8_t unread[100];
	sem_pattern_fill(unread, sizeof(unread), 40, 0);
	sem_send_all(p->client, unread, sizeof(unread));
	sem_wait_peekable(p->server, sizeof(unread), 2000);
	SEM_EXPECT(close(p->server), 0);
	p->server = -1;
	short revents = sem_wait_events(p->client, POLLERR, 2000);
	SEM_CHECK(revents & POLLERR, "no POLLERR within 2 s of the peer closing with unread data");
}

void sem_test_eof_after_close(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	sem_send_all(p.client, "bye", 3);
	SEM_EXPECT(close(p.client), 0);

	sem_recv_exact(p.server, got, 3);
	SEM_CHECK(memcmp(got, "bye", 3) == 0, "the data before EOF differs");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	SEM_EXPECT(read(p.server, got, sizeof(got)), 0);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_DONTWAIT), 0);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_PEEK), 0);
	/* EOF is readable, the write half is still open, and nothing hung up yet. */
	sem_expect_poll_state(p.server, POLLIN | POLLOUT | POLLRDHUP, "after the peer's close");
}

void sem_test_shutdown_wr(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	sem_send_all(p.client, "request", 7);
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);

	sem_recv_exact(p.server, got, 7);
	SEM_CHECK(memcmp(got, "request", 7) == 0, "the data before EOF differs");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	sem_expect_poll_state(p.server, POLLIN | POLLOUT | POLLRDHUP, "server after the peer's SHUT_WR");
	/* The shut side: writing fails EPIPE; Linux still reports POLLOUT, so that a writer
	 * waiting in poll wakes up and meets the error. */
	SEM_EXPECT_ERRNO(send(p.client, "x", 1, MSG_NOSIGNAL), EPIPE);
	sem_expect_poll_state(p.client, POLLOUT, "client after its own SHUT_WR");
	/* A second SHUT_WR is harmless; a bad `how` is EINVAL. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_EXPECT_ERRNO(shutdown(p.client, 7), EINVAL);

	/* The other direction still works. */
	sem_send_all(p.server, "reply", 5);
	sem_recv_exact(p.client, got, 5);
	SEM_CHECK(memcmp(got, "reply", 5) == 0, "the reply differs");
	SEM_EXPECT(close(p.server), 0);
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);
	short revents = sem_wait_events(p.client, POLLHUP, 2000);
	SEM_CHECK(revents & POLLHUP, "no POLLHUP with both directions closed");
	sem_expect_poll_state(p.client, POLLIN | POLLOUT | POLLRDHUP | POLLHUP,
			      "client with both directions closed");
}

void sem_test_shutdown_rd(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	int count = 0;
	sem_pair_open(ctx, &p);
	SEM_EXPECT(shutdown(p.server, SHUT_RD), 0);

	/* A blocking recv returns 0 at once; the shut side polls readable with RDHUP. */
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	sem_expect_poll_state(p.server, POLLIN | POLLOUT | POLLRDHUP, "after SHUT_RD");
	/* Linux sends nothing for SHUT_RD: the peer sees no change. */
	short revents = sem_poll_one(p.client, POLLIN | POLLRDHUP, 50);
	SEM_CHECK(revents == 0, "the peer of a SHUT_RD socket sees events 0x%x", (unsigned)revents);

	/* Linux quirk: TCP keeps queueing what the peer sends after SHUT_RD, and recv returns
	 * it; only when the queue is empty does recv say 0. */
	sem_send_all(p.client, "late", 4);
	int64_t end = sem_now_ms() + 2000;
	while (SEM_OK(ioctl(p.server, FIONREAD, &count)) == 0 && count < 4 && sem_now_ms() < end)
		sem_sleep_ms(1);
	SEM_MATCH(count == 4, "FIONREAD says %d after the peer sent 4 bytes past SHUT_RD", count);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 4);
	SEM_CHECK(memcmp(got, "late", 4) == 0, "the bytes sent after SHUT_RD differ");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);

	/* The write half of the SHUT_RD side works. */
	sem_send_all(p.server, "back", 4);
	sem_recv_exact(p.client, got, 4);
	SEM_CHECK(memcmp(got, "back", 4) == 0, "the bytes sent by the SHUT_RD side differ");
}

void sem_test_shutdown_rdwr(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	SEM_EXPECT(shutdown(p.server, SHUT_RDWR), 0);

	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 0);
	SEM_EXPECT_ERRNO(send(p.server, "x", 1, MSG_NOSIGNAL), EPIPE);
	sem_expect_poll_state(p.server, POLLIN | POLLOUT | POLLRDHUP | POLLHUP,
			      "after SHUT_RDWR");
	/* The peer reads EOF (the FIN) and may still write its own half. */
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);
	sem_expect_poll_state(p.client, POLLIN | POLLOUT | POLLRDHUP, "peer of a SHUT_RDWR socket");
	/* getpeername still names the peer: the socket is shut, not closed. */
	struct sockaddr_storage name;
	socklen_t len = sizeof(name);
	SEM_EXPECT(getpeername(p.server, (struct sockaddr *)&name, &len), 0);
}

void sem_test_close_unread_read(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	/* Bytes the client has not read yet, then a reset from the server's close. */
	sem_send_all(p.server, "xy", 2);
	sem_wait_peekable(p.client, 2, 2000);
	sem_reset_by_close(&p);

	sem_expect_poll_state(p.client, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
			      "after a reset");
	/* Linux hands over what arrived before the reset, then ECONNRESET once, then EOF. */
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 2);
	SEM_CHECK(memcmp(got, "xy", 2) == 0, "the data received before the reset differs");
	SEM_EXPECT_ERRNO(recv(p.client, got, sizeof(got), 0), ECONNRESET);
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);
	SEM_EXPECT(read(p.client, got, sizeof(got)), 0);
	SEM_EXPECT_ERRNO(send(p.client, "x", 1, MSG_NOSIGNAL), EPIPE);
	sem_expect_poll_state(p.client, POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
			      "after the reset was read");
}

void sem_test_close_unread_write(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[64];
	sem_pair_open(ctx, &p);
	sem_signal_count_start(SIGPIPE);
	sem_reset_by_close(&p);

	/* The first write reports the reset (no SIGPIPE: that is only for EPIPE); the next
	 * ones fail EPIPE and raise SIGPIPE; reads then see EOF. */
	SEM_EXPECT_ERRNO(write(p.client, "x", 1), ECONNRESET);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 0, "a write failing ECONNRESET raised SIGPIPE");
	SEM_EXPECT_ERRNO(write(p.client, "x", 1), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 1, "%d SIGPIPEs after one EPIPE",
		  sem_signal_count(SIGPIPE));
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);
}

void sem_test_sigpipe_epipe(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	sem_signal_count_start(SIGPIPE);
	SEM_EXPECT(close(p.server), 0);
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);

	/* Linux: the first write after the peer's FIN still succeeds (the peer answers it with
	 * a reset); the writes after that fail EPIPE. Allow a few successes, never a hang. */
	int ok = 0;
	ssize_t n;
	while ((n = write(p.client, "a", 1)) == 1 && ok < 200) {
		ok++;
		sem_sleep_ms(5);
	}
	SEM_CHECK(n == -1 && errno == EPIPE, "write after the peer closed returned %zd (%s) after "
		  "%d successes, expected -1 EPIPE", n, n < 0 ? sem_errno_name(errno) : "-", ok);
	sem_note("%d write(s) succeeded after the peer's close before EPIPE (Linux: 1)", ok);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 1, "%d SIGPIPEs after one failed write",
		  sem_signal_count(SIGPIPE));
	/* Every failing call raises its own SIGPIPE, whatever the call. */
	SEM_EXPECT_ERRNO(send(p.client, "a", 1, 0), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 2, "send: %d SIGPIPEs, expected 2",
		  sem_signal_count(SIGPIPE));
	struct iovec iov = { .iov_base = "a", .iov_len = 1 };
	SEM_EXPECT_ERRNO(writev(p.client, &iov, 1), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 3, "writev: %d SIGPIPEs, expected 3",
		  sem_signal_count(SIGPIPE));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	SEM_EXPECT_ERRNO(sendmsg(p.client, &msg, 0), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 4, "sendmsg: %d SIGPIPEs, expected 4",
		  sem_signal_count(SIGPIPE));
	SEM_EXPECT_ERRNO(sendto(p.client, "a", 1, 0, NULL, 0), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 5, "sendto: %d SIGPIPEs, expected 5",
		  sem_signal_count(SIGPIPE));
	/* With SIGPIPE ignored the process lives and still gets EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	SEM_EXPECT_ERRNO(write(p.client, "a", 1), EPIPE);
}

void sem_test_msg_nosignal(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	sem_signal_count_start(SIGPIPE);
	SEM_EXPECT(close(p.server), 0);
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);

	int ok = 0;
	ssize_t n;
	while ((n = send(p.client, "a", 1, MSG_NOSIGNAL)) == 1 && ok < 200) {
		ok++;
		sem_sleep_ms(5);
	}
	SEM_CHECK(n == -1 && errno == EPIPE, "send(MSG_NOSIGNAL) after the peer closed returned "
		  "%zd (%s), expected -1 EPIPE", n, n < 0 ? sem_errno_name(errno) : "-");
	struct iovec iov = { .iov_base = "a", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	SEM_EXPECT_ERRNO(sendmsg(p.client, &msg, MSG_NOSIGNAL), EPIPE);
	SEM_EXPECT_ERRNO(sendto(p.client, "a", 1, MSG_NOSIGNAL, NULL, 0), EPIPE);
	SEM_EXPECT_ERRNO(send(p.client, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT), EPIPE);
	SEM_MATCH(sem_signal_count(SIGPIPE) == 0, "%d SIGPIPEs despite MSG_NOSIGNAL",
		  sem_signal_count(SIGPIPE));
}

static int sem_so_error(int fd)
{
	int error = -1;
	socklen_t len = sizeof(error);
	SEM_EXPECT(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len), 0);
	SEM_CHECK(len == sizeof(int), "SO_ERROR length %u", (unsigned)len);
	return error;
}

void sem_test_so_error(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	SEM_CHECK(sem_so_error(p.client) == 0, "SO_ERROR of a new connection is not 0");
	SEM_CHECK(sem_so_error(p.server) == 0, "SO_ERROR of an accepted connection is not 0");
	SEM_CHECK(sem_so_error(p.listener) == 0, "SO_ERROR of the listener is not 0");
	sem_send_all(p.client, "ping", 4);
	sem_recv_exact(p.server, got, 4);
	SEM_CHECK(sem_so_error(p.client) == 0 && sem_so_error(p.server) == 0,
		  "SO_ERROR is not 0 after an exchange");

	/* A reset: SO_ERROR says ECONNRESET once and clears it, so recv then sees plain EOF. */
	sem_reset_by_close(&p);
	int error = sem_so_error(p.client);
	SEM_MATCH(error == ECONNRESET, "SO_ERROR after a reset is %s", sem_errno_name(error));
	SEM_MATCH(sem_so_error(p.client) == 0, "SO_ERROR did not clear the error it reported");
	sem_expect_poll_state(p.client, POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
			      "after SO_ERROR took the reset");
	SEM_EXPECT(recv(p.client, got, sizeof(got), 0), 0);
	SEM_EXPECT_ERRNO(send(p.client, "x", 1, MSG_NOSIGNAL), EPIPE);
}
