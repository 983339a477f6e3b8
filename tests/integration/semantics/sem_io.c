/* Subtests of moving bytes: blocking modes, partial counts, recv flags, vectors, sendmsg, FIONREAD. */
#include "sem.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/sockios.h>
#include <unistd.h>

void sem_test_blocking_send_recv(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	sem_pair_open(ctx, &p);
	SEM_CHECK(!sem_is_nonblocking(p.client), "a new connected socket has O_NONBLOCK");
	SEM_CHECK(!sem_is_nonblocking(p.server), "an accepted socket has O_NONBLOCK");

	/* A blocking recv on nothing waits until the peer sends, 100 ms later. */
	uint8_t msg[100], got[256];
	sem_pattern_fill(msg, sizeof(msg), 1, 0);
	struct sem_later_send later = { .fd = p.client, .delay_ms = 100, .buf = msg,
					.len = sizeof(msg) };
	int64_t start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), sizeof(msg));
	int64_t waited = sem_now_ms() - start;
	SEM_CHECK(waited >= 80, "recv returned after %lld ms, before the data was sent",
		  (long long)waited);
	SEM_CHECK(memcmp(got, msg, sizeof(msg)) == 0, "recv returned other bytes than were sent");
	sem_later_send_join(&later);

	/* A blocking send of more than all the buffers hold returns the full count, however
	 * long the reader takes, and never a short one. */
	size_t big = (size_t)8 << 20;
	uint8_t *buf = malloc(big);
	SEM_CHECK(buf != NULL, "out of memory");
	sem_pattern_fill(buf, big, 2, 0);
	struct sem_stream reader = { .fd = p.server, .seed = 2, .len = big };
	sem_stream_recv_start(&reader);
	SEM_EXPECT(send(p.client, buf, big, 0), big);
	sem_stream_join(&reader);

	/* The same the other way, with write(). */
	sem_pattern_fill(buf, big, 3, 0);
	reader = (struct sem_stream){ .fd = p.client, .seed = 3, .len = big };
	sem_stream_recv_start(&reader);
	SEM_EXPECT(write(p.server, buf, big), big);
	sem_stream_join(&reader);
	free(buf);
}

void sem_test_nonblocking_empty_read(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char buf[64];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	sem_pair_open(ctx, &p);
	sem_set_nonblocking(p.server, true);

	SEM_EXPECT_ERRNO(recv(p.server, buf, sizeof(buf), 0), EAGAIN);
	SEM_EXPECT_ERRNO(read(p.server, buf, sizeof(buf)), EAGAIN);
	SEM_EXPECT_ERRNO(readv(p.server, &iov, 1), EAGAIN);
	SEM_EXPECT_ERRNO(recvmsg(p.server, &msg, 0), EAGAIN);
	SEM_EXPECT_ERRNO(recvfrom(p.server, buf, sizeof(buf), 0, NULL, NULL), EAGAIN);

	sem_send_all(p.client, "0123456789", 10);
	SEM_CHECK(sem_wait_events(p.server, POLLIN, 2000) & POLLIN, "no POLLIN within 2 s");
	SEM_EXPECT(recv(p.server, buf, sizeof(buf), 0), 10);
	SEM_CHECK(memcmp(buf, "0123456789", 10) == 0, "wrong bytes");
	SEM_EXPECT_ERRNO(recv(p.server, buf, sizeof(buf), 0), EAGAIN);
	/* Non-blocking on the other end too, and for EOF: 0, not EAGAIN. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_CHECK(sem_wait_events(p.server, POLLIN, 2000) & POLLIN, "no POLLIN for EOF within 2 s");
	SEM_EXPECT(recv(p.server, buf, sizeof(buf), 0), 0);
}

void sem_test_nonblocking_full_write(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	static uint8_t chunk[65536];
	sem_pair_open(ctx, &p);
	sem_set_nonblocking(p.client, true);

	size_t total = sem_fill_until_eagain(p.client, 4, 0);
	SEM_CHECK(total > 0, "the first non-blocking send already failed EAGAIN");
	/* Full stays full while nobody reads: write() and sendmsg() fail too, and no POLLOUT. */
	SEM_EXPECT_ERRNO(write(p.client, chunk, sizeof(chunk)), EAGAIN);
	struct iovec iov = { .iov_base = chunk, .iov_len = sizeof(chunk) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	SEM_EXPECT_ERRNO(sendmsg(p.client, &msg, MSG_NOSIGNAL), EAGAIN);
	SEM_EXPECT_ERRNO(writev(p.client, &iov, 1), EAGAIN);
	short revents = sem_poll_one(p.client, POLLOUT, 0);
	char text[128];
	SEM_CHECK(!(revents & POLLOUT), "poll says POLLOUT (%s) right after send failed EAGAIN",
		  sem_poll_text(revents, text, sizeof(text)));
	sem_note("%zu bytes went before EAGAIN", total);

	/* The peer drains every byte in order; then the socket is writable again. */
	sem_recv_pattern(p.server, 4, 0, total);
	revents = sem_wait_events(p.client, POLLOUT, 2000);
	SEM_CHECK(revents & POLLOUT, "no POLLOUT within 2 s after the peer drained everything");
	sem_send_all(p.client, "after", 5);
	char buf[8];
	sem_recv_exact(p.server, buf, 5);
	SEM_CHECK(memcmp(buf, "after", 5) == 0, "wrong bytes after the refill");
}

void sem_test_partial_read(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	uint8_t msg[1000], got[4096];
	sem_pair_open(ctx, &p);
	sem_pattern_fill(msg, sizeof(msg), 5, 0);
	sem_send_all(p.client, msg, sizeof(msg));
	sem_wait_peekable(p.server, sizeof(msg), 2000);

	/* A read smaller than what is there takes exactly that much, from the front. */
	SEM_EXPECT(recv(p.server, got, 100, 0), 100);
	SEM_CHECK(memcmp(got, msg, 100) == 0, "the first 100 bytes differ");
	SEM_EXPECT(read(p.server, got, 1), 1);
	SEM_CHECK(got[0] == msg[100], "byte 100 differs");
	/* A blocking read larger than what is there returns what is there, without waiting. */
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 899);
	SEM_CHECK(memcmp(got, msg + 101, 899) == 0, "the last 899 bytes differ");
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), MSG_DONTWAIT), EAGAIN);
}

void sem_test_partial_write(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	size_t big = (size_t)64 << 20;
	uint8_t *buf = malloc(big);
	SEM_CHECK(buf != NULL, "out of memory");
	sem_pattern_fill(buf, big, 6, 0);
	sem_pair_open(ctx, &p);
	sem_set_nonblocking(p.client, true);

	/* One non-blocking send of more than the buffers hold: a short count, not EAGAIN. */
	ssize_t n = send(p.client, buf, big, 0);
	SEM_CHECK(n > 0 && (size_t)n < big, "non-blocking send of 64 MiB returned %zd (%s)", n,
		  n < 0 ? sem_errno_name(errno) : "-");
	sem_note("a non-blocking send of 64 MiB took %zd bytes", n);
	/* The buffers are now full. */
	SEM_EXPECT_ERRNO(send(p.client, buf + n, big - (size_t)n, 0), EAGAIN);

	/* The count is honest: exactly those bytes arrive, and nothing after them. */
	sem_recv_pattern(p.server, 6, 0, (size_t)n);
	short revents = sem_poll_one(p.server, POLLIN, 100);
	SEM_CHECK(!(revents & POLLIN), "more than the %zd bytes send counted arrived", n);

	/* writev does the same: short over two vectors. */
	struct iovec iov[2] = {
		{ .iov_base = buf, .iov_len = big / 2 },
		{ .iov_base = buf + big / 2, .iov_len = big / 2 },
	};
	SEM_CHECK(sem_wait_events(p.client, POLLOUT, 2000) & POLLOUT, "no POLLOUT after draining");
	n = writev(p.client, iov, 2);
	SEM_CHECK(n > 0 && (size_t)n < big, "non-blocking writev of 64 MiB returned %zd (%s)", n,
		  n < 0 ? sem_errno_name(errno) : "-");
	sem_recv_pattern(p.server, 6, 0, (size_t)n);
	revents = sem_poll_one(p.server, POLLIN, 100);
	SEM_CHECK(!(revents & POLLIN), "more than the %zd bytes writev counted arrived", n);
	free(buf);
}

void sem_test_msg_peek(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[32];
	sem_pair_open(ctx, &p);
	sem_send_all(p.client, "0123456789", 10);
	sem_wait_peekable(p.server, 10, 2000);

	SEM_EXPECT(recv(p.server, got, 5, MSG_PEEK), 5);
	SEM_CHECK(memcmp(got, "01234", 5) == 0, "peek of 5 returned other bytes");
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_PEEK), 10);
	SEM_CHECK(memcmp(got, "0123456789", 10) == 0, "peek of all returned other bytes");
	SEM_EXPECT(recv(p.server, got, 3, 0), 3);
	SEM_CHECK(memcmp(got, "012", 3) == 0, "the read after the peeks did not start at 0");
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_PEEK), 7);
	SEM_CHECK(memcmp(got, "3456789", 7) == 0, "peek after a read returned other bytes");
	SEM_EXPECT(recvfrom(p.server, got, sizeof(got), MSG_PEEK, NULL, NULL), 7);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 7);
	SEM_CHECK(memcmp(got, "3456789", 7) == 0, "the final read returned other bytes");
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), MSG_PEEK | MSG_DONTWAIT), EAGAIN);

	/* A blocking peek waits for data, and leaves it there. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "later",
					.len = 5 };
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_PEEK), 5);
	sem_later_send_join(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 5);
	SEM_CHECK(memcmp(got, "later", 5) == 0, "the peeked data was not there to read");
}

void sem_test_msg_waitall(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	uint8_t msg[4000], got[4000];
	sem_pair_open(ctx, &p);
	sem_pattern_fill(msg, sizeof(msg), 7, 0);

	/* Four pieces 30 ms apart: one recv with MSG_WAITALL returns all 4000 bytes. */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 30, .buf = msg,
					.len = sizeof(msg), .pieces = 4 };
	int64_t start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_WAITALL), sizeof(got));
	int64_t waited = sem_now_ms() - start;
	SEM_CHECK(waited >= 100, "MSG_WAITALL returned after %lld ms, before the last piece",
		  (long long)waited);
	SEM_CHECK(memcmp(got, msg, sizeof(msg)) == 0, "MSG_WAITALL returned other bytes");
	sem_later_send_join(&later);

	/* recvmsg with MSG_WAITALL fills two vectors the same way. */
	struct iovec iov[2] = {
		{ .iov_base = got, .iov_len = 1500 },
		{ .iov_base = got + 1500, .iov_len = 2500 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	memset(got, 0, sizeof(got));
	later = (struct sem_later_send){ .fd = p.client, .delay_ms = 20, .buf = msg,
					 .len = sizeof(msg), .pieces = 4 };
	sem_later_send_start(&later);
	SEM_EXPECT(recvmsg(p.server, &mh, MSG_WAITALL), sizeof(got));
	SEM_CHECK(memcmp(got, msg, sizeof(msg)) == 0, "recvmsg MSG_WAITALL returned other bytes");
	sem_later_send_join(&later);

	/* EOF ends the wait: a short count, then 0. */
	sem_send_all(p.client, msg, 100);
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_WAITALL), 100);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_WAITALL), 0);
}

void sem_test_msg_dontwait(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[16];
	sem_pair_open(ctx, &p);

	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), MSG_DONTWAIT), EAGAIN);
	SEM_CHECK(!sem_is_nonblocking(p.server), "MSG_DONTWAIT left O_NONBLOCK set");
	sem_send_all(p.client, "abc", 3);
	sem_wait_peekable(p.server, 3, 2000);
	SEM_EXPECT(recv(p.server, got, sizeof(got), MSG_DONTWAIT), 3);

	/* Sending with MSG_DONTWAIT on a blocking socket stops at EAGAIN instead of blocking. */
	size_t total = sem_fill_until_eagain(p.client, 8, 0);
	SEM_CHECK(!sem_is_nonblocking(p.client), "MSG_DONTWAIT left O_NONBLOCK set");
	sem_recv_pattern(p.server, 8, 0, total);
	/* And a plain blocking recv afterwards still blocks (until data comes 50 ms later). */
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	int64_t start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);
	SEM_CHECK(sem_now_ms() - start >= 40, "a plain recv after MSG_DONTWAIT did not block");
	sem_later_send_join(&later);
}

void sem_test_readv_writev(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	uint8_t msg[5310], a[1], b[100], c[1], d[8000];
	sem_pair_open(ctx, &p);
	sem_pattern_fill(msg, sizeof(msg), 9, 0);

	/* writev gathers 10 + 0 + 300 + 5000 bytes in order. */
	struct iovec out[4] = {
		{ .iov_base = msg, .iov_len = 10 },
		{ .iov_base = msg + 10, .iov_len = 0 },
		{ .iov_base = msg + 10, .iov_len = 300 },
		{ .iov_base = msg + 310, .iov_len = 5000 },
	};
	SEM_EXPECT(writev(p.client, out, 4), sizeof(msg));
	sem_wait_peekable(p.server, sizeof(msg), 2000);

	/* readv scatters over 1 + 100 + 0 + 8000 and returns what there was. */
	struct iovec in[4] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = b, .iov_len = sizeof(b) },
		{ .iov_base = c, .iov_len = 0 },
		{ .iov_base = d, .iov_len = sizeof(d) },
	};
	SEM_EXPECT(readv(p.server, in, 4), sizeof(msg));
	SEM_CHECK(a[0] == msg[0], "readv: first vector wrong");
	SEM_CHECK(memcmp(b, msg + 1, 100) == 0, "readv: second vector wrong");
	SEM_CHECK(memcmp(d, msg + 101, sizeof(msg) - 101) == 0, "readv: fourth vector wrong");

	/* readv smaller than what is there fills exactly its vectors. */
	SEM_EXPECT(writev(p.client, out, 4), sizeof(msg));
	sem_wait_peekable(p.server, sizeof(msg), 2000);
	in[3].iov_len = 1000;
	SEM_EXPECT(readv(p.server, in, 4), 1101);
	SEM_CHECK(memcmp(d, msg + 101, 1000) == 0, "short readv: fourth vector wrong");
	sem_recv_pattern(p.server, 9, 1101, sizeof(msg) - 1101);

	/* More than IOV_MAX vectors: EINVAL (zero vectors: see zero_length). */
	static struct iovec many[IOV_MAX + 1];
	for (size_t i = 0; i < IOV_MAX + 1; i++)
		many[i] = (struct iovec){ .iov_base = msg, .iov_len = 1 };
	SEM_EXPECT_ERRNO(writev(p.client, many, IOV_MAX + 1), EINVAL);
	SEM_EXPECT_ERRNO(readv(p.server, many, IOV_MAX + 1), EINVAL);
	/* Nothing was sent by the failed calls. */
	SEM_EXPECT_ERRNO(recv(p.server, d, sizeof(d), MSG_DONTWAIT), EAGAIN);
}

void sem_test_sendmsg_recvmsg(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	uint8_t msg[1000], got[1500];
	sem_pair_open(ctx, &p);
	sem_pattern_fill(msg, sizeof(msg), 10, 0);

	struct iovec out[3] = {
		{ .iov_base = msg, .iov_len = 100 },
		{ .iov_base = msg + 100, .iov_len = 0 },
		{ .iov_base = msg + 100, .iov_len = 900 },
	};
	struct msghdr smsg = { .msg_iov = out, .msg_iovlen = 3 };
	SEM_EXPECT(sendmsg(p.client, &smsg, 0), sizeof(msg));
	sem_wait_peekable(p.server, sizeof(msg), 2000);

	/* recvmsg with a name buffer and a control buffer: TCP fills neither. */
	struct sockaddr_storage name;
	char control[256];
	struct iovec in[2] = {
		{ .iov_base = got, .iov_len = 500 },
		{ .iov_base = got + 500, .iov_len = 1000 },
	};
	struct msghdr rmsg = {
		.msg_name = &name, .msg_namelen = sizeof(name), .msg_iov = in, .msg_iovlen = 2,
		.msg_control = control, .msg_controllen = sizeof(control), .msg_flags = -1,
	};
	SEM_EXPECT(recvmsg(p.server, &rmsg, MSG_PEEK), sizeof(msg));
	SEM_CHECK(memcmp(got, msg, sizeof(msg)) == 0, "recvmsg MSG_PEEK returned other bytes");
	rmsg.msg_namelen = sizeof(name);
	rmsg.msg_controllen = sizeof(control);
	rmsg.msg_flags = -1;
	memset(got, 0, sizeof(got));
	SEM_EXPECT(recvmsg(p.server, &rmsg, 0), sizeof(msg));
	SEM_CHECK(memcmp(got, msg, sizeof(msg)) == 0, "recvmsg returned other bytes");
	SEM_MATCH(rmsg.msg_namelen == 0, "recvmsg set msg_namelen %u; the kernel sets 0 on TCP",
		  (unsigned)rmsg.msg_namelen);
	SEM_MATCH(rmsg.msg_controllen == 0, "recvmsg left msg_controllen %zu; the kernel sets 0",
		  (size_t)rmsg.msg_controllen);
	SEM_MATCH(rmsg.msg_flags == 0, "recvmsg set msg_flags 0x%x; expected 0", rmsg.msg_flags);

	/* recvfrom with an address buffer: the kernel writes length 0 for TCP. */
	sem_send_all(p.client, "xyz", 3);
	socklen_t len = sizeof(name);
	sem_wait_peekable(p.server, 3, 2000);
	SEM_EXPECT(recvfrom(p.server, got, sizeof(got), 0, (struct sockaddr *)&name, &len), 3);
	SEM_MATCH(len == 0, "recvfrom set the address length to %u; the kernel sets 0 on TCP",
		  (unsigned)len);

	/* A destination on a connected TCP socket is ignored, even a wrong one. */
	struct sockaddr_storage elsewhere = p.listen_addr;
	if (elsewhere.ss_family == AF_INET)
		((struct sockaddr_in *)&elsewhere)->sin_port = htons(1);
	else
		((struct sockaddr_in6 *)&elsewhere)->sin6_port = htons(1);
	smsg = (struct msghdr){ .msg_name = &elsewhere, .msg_namelen = p.listen_len,
				.msg_iov = out, .msg_iovlen = 1 };
	SEM_EXPECT(sendmsg(p.client, &smsg, 0), 100);
	SEM_EXPECT(sendto(p.client, "!", 1, 0, (struct sockaddr *)&elsewhere, p.listen_len), 1);
	sem_recv_pattern(p.server, 10, 0, 100);
	sem_recv_exact(p.server, got, 1);
	SEM_CHECK(got[0] == '!', "sendto with an address sent other bytes");
}

/* How sendmsg with SCM_RIGHTS on a TCP socket ended; see sem_test_sendmsg_rights. */
enum sem_rights_outcome { SEM_RIGHTS_DROPPED, SEM_RIGHTS_REFUSED };

void sem_test_sendmsg_rights(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	sem_pair_open(ctx, &p);
	int passed = (int)SEM_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));

	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof(control));
	struct iovec iov = { .iov_base = "fd!", .iov_len = 3 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &passed, sizeof(int));

	/*
	 * Linux's tcp_sendmsg runs the control messages through __sock_cmsg_send, which skips
	 * SCM_RIGHTS and SCM_CREDENTIALS: the bytes go, the descriptor is silently dropped, and
	 * the receiver gets no control data. Issue 4 asks viaudit to refuse ancillary data with a
	 * clear errno instead, so that a program never believes it passed a descriptor. Kernel
	 * mode must show the kernel's behaviour; the tcp route passes through to the kernel and
	 * may show either; the shm route must refuse (EOPNOTSUPP or EINVAL) and send nothing.
	 */
	ssize_t n = sendmsg(p.client, &msg, MSG_NOSIGNAL);
	int error = errno;
	enum sem_rights_outcome outcome;
	if (n == 3) {
		outcome = SEM_RIGHTS_DROPPED;
	} else {
		SEM_CHECK(n == -1 && (error == EOPNOTSUPP || error == EINVAL),
			  "sendmsg with SCM_RIGHTS returned %zd (%s): neither the kernel's 3 nor a "
			  "refusal with EOPNOTSUPP or EINVAL", n, n < 0 ? sem_errno_name(error) : "-");
		outcome = SEM_RIGHTS_REFUSED;
	}
	switch (ctx->mode) {
	case SEM_MODE_KERNEL:
		SEM_CHECK(outcome == SEM_RIGHTS_DROPPED,
			  "without viaudit, sendmsg with SCM_RIGHTS failed %s; Linux sends the bytes",
			  sem_errno_name(error));
		break;
	case SEM_MODE_TCP:
		break;
	case SEM_MODE_SHM:
		SEM_CHECK(outcome == SEM_RIGHTS_REFUSED,
			  "on an shm route sendmsg with SCM_RIGHTS returned 3: issue 4 asks for a "
			  "refusal with a clear errno (EOPNOTSUPP or EINVAL)");
		break;
	}

	char got[16], rcontrol[256];
	struct iovec riov = { .iov_base = got, .iov_len = sizeof(got) };
	struct msghdr rmsg = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = rcontrol,
			       .msg_controllen = sizeof(rcontrol) };
	if (outcome == SEM_RIGHTS_DROPPED) {
		sem_note("sendmsg with SCM_RIGHTS sent the bytes and dropped the descriptor");
		sem_wait_peekable(p.server, 3, 2000);
		SEM_EXPECT(recvmsg(p.server, &rmsg, 0), 3);
		SEM_CHECK(memcmp(got, "fd!", 3) == 0, "other bytes arrived");
		SEM_MATCH(rmsg.msg_controllen == 0 && !(rmsg.msg_flags & MSG_CTRUNC),
			  "the receiver got control data (%zu bytes, flags 0x%x) over TCP",
			  (size_t)rmsg.msg_controllen, rmsg.msg_flags);
	} else {
		sem_note("sendmsg with SCM_RIGHTS was refused with %s", sem_errno_name(error));
		short revents = sem_poll_one(p.server, POLLIN, 100);
		SEM_CHECK(!(revents & POLLIN), "the refused sendmsg still sent its bytes");
	}
	/* Either way the connection is fine afterwards. */
	msg.msg_control = NULL;
	msg.msg_controllen = 0;
	SEM_EXPECT(sendmsg(p.client, &msg, MSG_NOSIGNAL), 3);
	sem_recv_exact(p.server, got, 3);
	SEM_CHECK(memcmp(got, "fd!", 3) == 0, "other bytes arrived after the ancillary attempt");
	close(passed);
}

void sem_test_fionread(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	uint8_t msg[1234], got[1234];
	int count = -1;
	sem_pair_open(ctx, &p);
	sem_pattern_fill(msg, sizeof(msg), 11, 0);

	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 0, "FIONREAD on an empty socket says %d", count);
	sem_send_all(p.client, msg, sizeof(msg));
	sem_wait_peekable(p.server, sizeof(msg), 2000);
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 1234, "FIONREAD says %d, 1234 bytes are there", count);
	SEM_EXPECT(recv(p.server, got, 234, 0), 234);
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 1000, "FIONREAD says %d after reading 234 of 1234", count);
	SEM_EXPECT(ioctl(p.server, SIOCINQ, &count), 0);
	SEM_MATCH(count == 1000, "SIOCINQ says %d, FIONREAD 1000", count);
	SEM_EXPECT(recv(p.server, got, 1000, MSG_PEEK), 1000);
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 1000, "FIONREAD says %d after a MSG_PEEK", count);
	SEM_EXPECT(recv(p.server, got, 1000, 0), 1000);
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 0, "FIONREAD says %d after reading everything", count);

	/* The peer's FIN is not a byte: still 0 at EOF. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_CHECK(sem_wait_events(p.server, POLLIN, 2000) & POLLIN, "no POLLIN for EOF");
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 0, "FIONREAD says %d at EOF", count);
	/* On a listening socket Linux's tcp_ioctl says EINVAL. */
	SEM_EXPECT_ERRNO(ioctl(p.listener, FIONREAD, &count), EINVAL);
}

void sem_test_zero_length(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char buf[4];
	int count = -1;
	struct iovec iov = { .iov_base = buf, .iov_len = 0 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 0 };
	sem_pair_open(ctx, &p);

	/* read and readv of 0 bytes return 0 at once even on an empty blocking socket: the VFS
	 * answers them without asking TCP. A watchdog interrupts a call that blocks instead. */
	struct sem_watchdog dog = { .after_ms = 1000 };
	sem_watchdog_start(&dog);
	int64_t start = sem_now_ms();
	SEM_EXPECT(read(p.server, buf, 0), 0);
	SEM_EXPECT(readv(p.server, &iov, 0), 0);
	SEM_EXPECT(readv(p.server, &iov, 1), 0);
	sem_watchdog_stop(&dog);
	int64_t took = sem_now_ms() - start;
	SEM_CHECK(took < 500, "read/readv of 0 bytes on an empty socket blocked %lld ms; Linux "
		  "returns 0 at once", (long long)took);

	/* recv, recvfrom and recvmsg of 0 bytes go to tcp_recvmsg, which waits for one byte:
	 * EAGAIN without blocking, and a blocking one returns 0 when data arrives. */
	SEM_EXPECT_ERRNO(recv(p.server, buf, 0, MSG_DONTWAIT), EAGAIN);
	SEM_EXPECT_ERRNO(recvmsg(p.server, &msg, MSG_DONTWAIT), EAGAIN);
	struct sem_later_send later = { .fd = p.client, .delay_ms = 100, .buf = "z", .len = 1 };
	start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, buf, 0, 0), 0);
	took = sem_now_ms() - start;
	SEM_CHECK(took >= 80, "a blocking recv of 0 bytes returned after %lld ms; Linux waits "
		  "for data", (long long)took);
	sem_later_send_join(&later);
	/* With data there: 0 at once, nothing consumed. */
	sem_wait_peekable(p.server, 1, 2000);
	SEM_EXPECT(recv(p.server, buf, 0, 0), 0);
	SEM_EXPECT(recvmsg(p.server, &msg, 0), 0);
	SEM_EXPECT(recvfrom(p.server, buf, 0, 0, NULL, NULL), 0);
	SEM_EXPECT(read(p.server, buf, 0), 0);
	SEM_EXPECT(ioctl(p.server, FIONREAD, &count), 0);
	SEM_MATCH(count == 1, "FIONREAD says %d after reads of 0 bytes; 1 byte was there", count);

	/* Writes of 0 bytes return 0 and send nothing. */
	SEM_EXPECT(write(p.client, buf, 0), 0);
	SEM_EXPECT(send(p.client, buf, 0, 0), 0);
	SEM_EXPECT(writev(p.client, &iov, 0), 0);
	SEM_EXPECT(writev(p.client, &iov, 1), 0);
	SEM_EXPECT(sendmsg(p.client, &msg, 0), 0);
	SEM_EXPECT(recv(p.server, buf, sizeof(buf), 0), 1);
	SEM_CHECK(buf[0] == 'z', "other bytes arrived");
	short revents = sem_poll_one(p.server, POLLIN, 100);
	SEM_CHECK(!(revents & POLLIN), "writes of 0 bytes made the peer readable");

	/* At EOF every read of 0 bytes returns 0, blocking or not. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_CHECK(sem_wait_events(p.server, POLLRDHUP, 2000) & POLLRDHUP, "no POLLRDHUP in 2 s");
	SEM_EXPECT(recv(p.server, buf, 0, 0), 0);
	SEM_EXPECT(recv(p.server, buf, 0, MSG_DONTWAIT), 0);
	SEM_EXPECT(read(p.server, buf, 0), 0);
}
