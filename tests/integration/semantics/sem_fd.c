/* Subtests of the descriptor itself: addresses, dup family, O_NONBLOCK, close-on-exec, accept4 flags. */
#include "sem.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* The address part (no port) of a and b is the same. */
static bool sem_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_storage x = *a, y = *b;
	if (x.ss_family == AF_INET) {
		((struct sockaddr_in *)&x)->sin_port = 0;
		((struct sockaddr_in *)&y)->sin_port = 0;
	} else {
		((struct sockaddr_in6 *)&x)->sin6_port = 0;
		((struct sockaddr_in6 *)&y)->sin6_port = 0;
	}
	return sem_sockaddr_equal(&x, &y);
}

static unsigned sem_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)a)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static void sem_expect_name(const struct sem_ctx *ctx, const char *what, socklen_t len,
			    const struct sockaddr_storage *got, const struct sockaddr_storage *want)
{
	char a[96], b[96];
	SEM_CHECK(len == ctx->addr_len, "%s: length %u, expected %u", what, (unsigned)len,
		  (unsigned)ctx->addr_len);
	SEM_CHECK(sem_sockaddr_equal(got, want), "%s is %s, expected %s", what,
		  sem_sockaddr_text(got, a, sizeof(a)), sem_sockaddr_text(want, b, sizeof(b)));
}

void sem_test_names(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	struct sockaddr_storage client_local, client_peer, server_local, server_peer;
	socklen_t len;
	char text[96];
	sem_pair_open(ctx, &p);

	SEM_CHECK(p.listen_len == ctx->addr_len, "listener getsockname length %u",
		  (unsigned)p.listen_len);
	SEM_CHECK(p.listen_addr.ss_family == ctx->family && sem_same_host(&p.listen_addr, &ctx->addr),
		  "the listener is bound to %s, not to %s",
		  sem_sockaddr_text(&p.listen_addr, text, sizeof(text)), ctx->address_text);
	SEM_CHECK(sem_port(&p.listen_addr) != 0, "the listener has port 0");

	len = sizeof(client_peer);
	SEM_EXPECT(getpeername(p.client, (struct sockaddr *)&client_peer, &len), 0);
	sem_expect_name(ctx, "the client's getpeername", len, &client_peer, &p.listen_addr);
	len = sizeof(server_local);
	SEM_EXPECT(getsockname(p.server, (struct sockaddr *)&server_local, &len), 0);
	sem_expect_name(ctx, "the accepted socket's getsockname", len, &server_local,
			&p.listen_addr);

	len = sizeof(client_local);
	SEM_EXPECT(getsockname(p.client, (struct sockaddr *)&client_local, &len), 0);
	SEM_CHECK(len == ctx->addr_len, "the client's getsockname length %u", (unsigned)len);
	SEM_CHECK(sem_same_host(&client_local, &ctx->addr),
		  "the client's local address is %s; to a local address the source is the same",
		  sem_sockaddr_text(&client_local, text, sizeof(text)));
	SEM_CHECK(sem_port(&client_local) != 0 && sem_port(&client_local) != sem_port(&p.listen_addr),
		  "the client's local port is %u", sem_port(&client_local));
	len = sizeof(server_peer);
	SEM_EXPECT(getpeername(p.server, (struct sockaddr *)&server_peer, &len), 0);
	sem_expect_name(ctx, "the accepted socket's getpeername", len, &server_peer, &client_local);
	sem_expect_name(ctx, "the address accept returned", p.accepted_len, &p.accepted_addr,
			&client_local);

	/* A short buffer: the name is truncated and the length says the full size. */
	struct sockaddr_storage small;
	memset(&small, 0xee, sizeof(small));
	len = 4;
	SEM_EXPECT(getsockname(p.client, (struct sockaddr *)&small, &len), 0);
	SEM_MATCH(len == ctx->addr_len, "getsockname with a 4-byte buffer set length %u, the "
		  "kernel sets the full %u", (unsigned)len, (unsigned)ctx->addr_len);
	SEM_CHECK(memcmp(&small, &client_local, 4) == 0 && ((unsigned char *)&small)[4] == 0xee,
		  "getsockname with a 4-byte buffer wrote other than the first 4 bytes");
	len = 4;
	SEM_EXPECT(getpeername(p.client, (struct sockaddr *)&small, &len), 0);
	SEM_MATCH(len == ctx->addr_len, "getpeername with a 4-byte buffer set length %u",
		  (unsigned)len);

	/* A listener has no peer. */
	len = sizeof(small);
	SEM_EXPECT_ERRNO(getpeername(p.listener, (struct sockaddr *)&small, &len), ENOTCONN);
	/* The names stay after the peer closed. */
	SEM_EXPECT(close(p.server), 0);
	len = sizeof(client_peer);
	SEM_EXPECT(getpeername(p.client, (struct sockaddr *)&client_peer, &len), 0);
	sem_expect_name(ctx, "getpeername after the peer's close", len, &client_peer,
			&p.listen_addr);
}

/* Sends one byte on fd and checks that it arrives on peer. */
static void sem_expect_path(int fd, int peer, char byte, const char *via)
{
	char got = 0;
	sem_send_all(fd, &byte, 1);
	SEM_CHECK(recv(peer, &got, 1, 0) == 1 && got == byte, "a byte sent %s did not arrive", via);
}

static void sem_expect_open(int peer, const char *after)
{
	short revents = sem_poll_one(peer, POLLIN, 100);
	SEM_CHECK(!(revents & (POLLIN | POLLHUP)), "the peer sees EOF or data after %s", after);
}

/* An fd number that is free for dup2/dup3 to take: a /dev/null fd. */
static int sem_spare_fd(void)
{
	return (int)SEM_OK(open("/dev/null", O_RDONLY));
}

void sem_test_dup_shares_session(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got = 0;
	sem_pair_open(ctx, &p);

	int d = (int)SEM_OK(dup(p.client));
	sem_expect_path(d, p.server, '1', "through dup");
	sem_expect_path(p.client, p.server, '2', "through the original after dup");
	sem_send_all(p.server, "34", 2);
	SEM_EXPECT(recv(p.client, &got, 1, 0), 1);
	SEM_CHECK(got == '3', "the original read other than the first byte");
	SEM_EXPECT(recv(d, &got, 1, 0), 1);
	SEM_CHECK(got == '4', "the dup did not read on from where the original stopped");

	SEM_EXPECT(close(p.client), 0);
	sem_expect_open(p.server, "closing the original while a dup is open");
	sem_expect_path(d, p.server, '5', "through dup after the original's close");

	int t2 = sem_spare_fd();
	SEM_EXPECT(dup2(d, t2), t2);
	sem_expect_path(t2, p.server, '6', "through dup2");
	SEM_EXPECT(dup2(t2, t2), t2); /* onto itself: nothing happens */
	sem_expect_path(t2, p.server, '7', "after dup2 of an fd onto itself");

	int t3 = sem_spare_fd();
	SEM_EXPECT(dup3(d, t3, O_CLOEXEC), t3);
	SEM_EXPECT(fcntl(t3, F_GETFD), FD_CLOEXEC);
	SEM_EXPECT(fcntl(d, F_GETFD), 0);
	sem_expect_path(t3, p.server, '8', "through dup3");
	SEM_EXPECT_ERRNO(dup3(t3, t3, 0), EINVAL);

	int f1 = (int)SEM_OK(fcntl(d, F_DUPFD, 0));
	int f2 = (int)SEM_OK(fcntl(d, F_DUPFD_CLOEXEC, 100));
	SEM_CHECK(f2 >= 100, "F_DUPFD_CLOEXEC 100 gave fd %d", f2);
	SEM_EXPECT(fcntl(f2, F_GETFD), FD_CLOEXEC);
	sem_expect_path(f1, p.server, '9', "through F_DUPFD");
	sem_expect_path(f2, p.server, 'a', "through F_DUPFD_CLOEXEC");

	/* Closing all but one keeps the connection; closing the last is the close. */
	SEM_EXPECT(close(d), 0);
	SEM_EXPECT(close(t2), 0);
	SEM_EXPECT(close(f1), 0);
	SEM_EXPECT(close(f2), 0);
	sem_expect_open(p.server, "closing all dups but one");
	sem_expect_path(t3, p.server, 'b', "through the last dup");
	sem_expect_path(p.server, t3, 'c', "to the last dup");
	SEM_EXPECT(close(t3), 0);
	SEM_EXPECT(recv(p.server, &got, 1, 0), 0);
}

void sem_test_dup2_over_socket(const struct sem_ctx *ctx)
{
	struct sem_pair a;
	int b_client, b_server;
	char got;
	sem_pair_open(ctx, &a);
	sem_pair_connect_more(ctx, &a, &b_client, &b_server);
	sem_expect_path(b_client, b_server, 'B', "on the second connection");

	/* dup2 closes what b_client was: the second connection's client end. */
	SEM_EXPECT(dup2(a.client, b_client), b_client);
	SEM_EXPECT(recv(b_server, &got, 1, 0), 0);
	/* b_client is now the first connection. */
	sem_expect_path(b_client, a.server, 'A', "through the fd dup2 replaced");
	SEM_EXPECT(close(a.client), 0);
	sem_expect_open(a.server, "closing the original after dup2");
	SEM_EXPECT(close(b_client), 0);
	SEM_EXPECT(recv(a.server, &got, 1, 0), 0);
}

void sem_test_fcntl_nonblock(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open(ctx, &p);
	SEM_CHECK(!sem_is_nonblocking(p.server), "an accepted socket starts with O_NONBLOCK");

	sem_set_nonblocking(p.server, true);
	SEM_CHECK(sem_is_nonblocking(p.server), "F_SETFL O_NONBLOCK did not stick");
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), 0), EAGAIN);

	/* O_NONBLOCK belongs to the open file description: dups share it. */
	int d = (int)SEM_OK(dup(p.server));
	SEM_CHECK(sem_is_nonblocking(d), "a dup does not share O_NONBLOCK");
	sem_set_nonblocking(d, false);
	SEM_CHECK(!sem_is_nonblocking(p.server), "clearing O_NONBLOCK on a dup did not clear it");
	struct sem_later_send later = { .fd = p.client, .delay_ms = 50, .buf = "x", .len = 1 };
	int64_t start = sem_now_ms();
	sem_later_send_start(&later);
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 1);
	SEM_CHECK(sem_now_ms() - start >= 40, "recv did not block after O_NONBLOCK was cleared");
	sem_later_send_join(&later);

	/* FIONBIO does the same as F_SETFL. */
	int on = 1;
	SEM_EXPECT(ioctl(p.server, FIONBIO, &on), 0);
	SEM_CHECK(sem_is_nonblocking(p.server), "FIONBIO 1 did not set O_NONBLOCK");
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), 0), EAGAIN);
	SEM_EXPECT_ERRNO(recv(d, got, sizeof(got), 0), EAGAIN);
	on = 0;
	SEM_EXPECT(ioctl(d, FIONBIO, &on), 0);
	SEM_CHECK(!sem_is_nonblocking(p.server), "FIONBIO 0 on a dup did not clear O_NONBLOCK");
	/* Blocking again, and the data still flows. */
	sem_expect_path(p.client, p.server, 'y', "after toggling O_NONBLOCK");
}

/* The fds open now (but not the one reading /proc/self/fd), as "a,b,c". */
static void sem_list_fds(char *buf, size_t size)
{
	DIR *dir = opendir("/proc/self/fd");
	SEM_CHECK(dir != NULL, "opendir /proc/self/fd: %s", sem_errno_name(errno));
	size_t used = 0;
	buf[0] = '\0';
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(dir))
			continue;
		int n = snprintf(buf + used, size - used, "%s%s,", used ? "" : ",", entry->d_name);
		SEM_CHECK(n > 0 && (size_t)n < size - used, "too many open fds");
		used += (size_t)n;
	}
	closedir(dir);
}

void sem_test_cloexec(const struct sem_ctx *ctx)
{
	static char before[8192];
	struct sem_pair p, q;
	sem_list_fds(before, sizeof(before));
	sem_pair_open_flags(ctx, &p, SOCK_CLOEXEC, SOCK_CLOEXEC);
	SEM_EXPECT(fcntl(p.client, F_GETFD), FD_CLOEXEC);
	SEM_EXPECT(fcntl(p.server, F_GETFD), FD_CLOEXEC);
	SEM_EXPECT(fcntl(p.listener, F_GETFD), 0);

	/* Without the flags: no FD_CLOEXEC; F_SETFD switches it both ways. */
	sem_pair_open(ctx, &q);
	SEM_EXPECT(fcntl(q.client, F_GETFD), 0);
	SEM_EXPECT(fcntl(q.server, F_GETFD), 0);
	SEM_EXPECT(fcntl(q.client, F_SETFD, FD_CLOEXEC), 0);
	SEM_EXPECT(fcntl(q.client, F_GETFD), FD_CLOEXEC);
	SEM_EXPECT(fcntl(p.client, F_SETFD, 0), 0);
	SEM_EXPECT(fcntl(p.client, F_GETFD), 0);
	sem_expect_path(p.client, p.server, 'z', "after F_SETFD");

	/* Exec: every socket marked close-on-exec is gone in the new image, and nothing the
	 * connections made behind the program's back (memfds, eventfds, doors) leaks into it. */
	int fds[] = { p.client, p.server, p.listener, q.client, q.server, q.listener };
	char list[256] = "";
	size_t used = 0;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		SEM_EXPECT(fcntl(fds[i], F_SETFD, FD_CLOEXEC), 0);
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%d", i ? "," : "",
					 fds[i]);
	}
	char *args[] = { "sem_check", SEM_EXEC_CHECK, (char *)ctx->name,
			 (char *)ctx->address_text, before, list, NULL };
	execv("/proc/self/exe", args);
	SEM_FAIL("execv /proc/self/exe: %s", sem_errno_name(errno));
}

/* The exec'd image of the cloexec subtest: NAME ADDRESS FDS_BEFORE CLOSED_FDS. */
int sem_exec_check_main(int argc, char **argv)
{
	static struct sem_ctx ctx;
	static char now[8192];
	if (argc != 5)
		return 2;
	ctx.name = argv[1];
	ctx.address_text = argv[2];
	sem_current = &ctx;
	const char *before = argv[3];
	char *closed = argv[4];
	for (char *fd = strtok(closed, ","); fd != NULL; fd = strtok(NULL, ",")) {
		int n = atoi(fd);
		SEM_CHECK(fcntl(n, F_GETFD) < 0 && errno == EBADF,
			  "fd %d had FD_CLOEXEC but is open after exec", n);
	}
	sem_list_fds(now, sizeof(now));
	for (char *fd = strtok(now, ","); fd != NULL; fd = strtok(NULL, ",")) {
		char key[32];
		snprintf(key, sizeof(key), ",%s,", fd);
		SEM_CHECK(strstr(before, key) != NULL,
			  "fd %s is open after exec and was not before the subtest (fds before: %s)",
			  fd, before);
	}
	printf("ok %s %s\n", ctx.name, ctx.address_text);
	return 0;
}

void sem_test_accept4_nonblock(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	char got[8];
	sem_pair_open_flags(ctx, &p, 0, SOCK_NONBLOCK);
	SEM_CHECK(sem_is_nonblocking(p.server), "accept4 SOCK_NONBLOCK: no O_NONBLOCK");
	SEM_EXPECT(fcntl(p.server, F_GETFD), 0);
	SEM_EXPECT_ERRNO(recv(p.server, got, sizeof(got), 0), EAGAIN);
	sem_send_all(p.client, "hi", 2);
	SEM_CHECK(sem_wait_events(p.server, POLLIN, 2000) & POLLIN, "no POLLIN within 2 s");
	SEM_EXPECT(recv(p.server, got, sizeof(got), 0), 2);

	/* A non-blocking listener: accept says EAGAIN with nobody waiting. */
	sem_set_nonblocking(p.listener, true);
	SEM_EXPECT_ERRNO(accept(p.listener, NULL, NULL), EAGAIN);
	SEM_EXPECT_ERRNO(accept4(p.listener, NULL, NULL, SOCK_CLOEXEC), EAGAIN);
	SEM_EXPECT_ERRNO(accept4(p.listener, NULL, NULL, 0x40000000), EINVAL);

	/* Linux: accept does not pass the listener's O_NONBLOCK on to the new socket. */
	struct sem_connector c = { .ctx = ctx, .addr = &p.listen_addr, .len = p.listen_len };
	sem_connect_start(&c);
	SEM_CHECK(sem_wait_events(p.listener, POLLIN, 5000) & POLLIN, "listener: no POLLIN");
	int s1 = (int)SEM_OK(accept(p.listener, NULL, NULL));
	int c1 = sem_connect_join(&c);
	SEM_CHECK(!sem_is_nonblocking(s1), "accept inherited the listener's O_NONBLOCK");
	sem_expect_path(c1, s1, 'n', "on a connection from a non-blocking listener");

	/* Both flags at once. */
	sem_connect_start(&c);
	SEM_CHECK(sem_wait_events(p.listener, POLLIN, 5000) & POLLIN, "listener: no POLLIN");
	int s2 = (int)SEM_OK(accept4(p.listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
	int c2 = sem_connect_join(&c);
	SEM_CHECK(sem_is_nonblocking(s2), "accept4 SOCK_NONBLOCK|SOCK_CLOEXEC: no O_NONBLOCK");
	SEM_EXPECT(fcntl(s2, F_GETFD), FD_CLOEXEC);
	SEM_EXPECT_ERRNO(recv(s2, got, sizeof(got), 0), EAGAIN);
	sem_send_all(c2, "ok", 2);
	SEM_CHECK(sem_wait_events(s2, POLLIN, 2000) & POLLIN, "no POLLIN within 2 s");
	SEM_EXPECT(recv(s2, got, sizeof(got), 0), 2);
}
