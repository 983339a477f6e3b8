/* Unit tests of the door: names, finding a listener, passing a request and its fds, refusals. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "door.h"
#include "memfd_seal.h"

#define NETNS 4026531840ul
#define RING (64u * 1024)
#define WAIT_MS 5000

/* ----- helpers ----- */

/* The number of open descriptors of this process. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct sockaddr_in sockaddr_v4(const char *text, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET, text, &in.sin_addr), 1);
	return in;
}

static struct sockaddr_in6 sockaddr_v6(const char *text, uint16_t port)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
	return in6;
}

static struct door_address address_of(const void *sa, socklen_t len)
{
	struct door_address a;

	assert_int_equal(door_address_from_sockaddr(&a, sa, len), 0);
	return a;
}

/*
 * A TCP port of our own for door names: a bound socket on 127.0.0.1 keeps any other
 * listener (and so any other door) off it while the test runs. Returns the port and sets
 * *HOLDER to the socket to close afterwards.
 */
static uint16_t port_reserve(int *holder)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 0);
	socklen_t len = sizeof in;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	*holder = fd;
	return ntohs(in.sin_port);
}

/* The descriptors a REQUEST carries: a sealed memfd and two eventfds. */
static void request_fds_create(int fds[DOOR_REQUEST_FDS])
{
	fds[DOOR_FD_MEMFD] = memfd_seal_create("viaudit-test", RING);
	fds[DOOR_FD_CONNECTOR_WAKE] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fds[DOOR_FD_LISTENER_WAKE] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (size_t i = 0; i < DOOR_REQUEST_FDS; i++)
		assert_true(fds[i] >= 0);
}

static void fds_close(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

static struct door_message request_for(uint16_t port)
{
	struct sockaddr_in src = sockaddr_v4("127.0.0.1", 40000);
	struct sockaddr_in dst = sockaddr_v4("127.0.0.1", port);
	struct door_message m = { .type = DOOR_MESSAGE_REQUEST };

	m.request.source = address_of(&src, sizeof src);
	m.request.destination = address_of(&dst, sizeof dst);
	assert_int_equal(door_token_random(m.request.token), 0);
	m.request.ring_size = RING;
	return m;
}

/* Sends LEN raw bytes with N descriptors, as a hostile or broken peer would. */
static void send_raw(int fd, const void *data, size_t len, const int *fds, size_t n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(n <= 16);
	if (n > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof control);
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	}
	assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* A connected pair of door-like sockets (SOCK_SEQPACKET, non-blocking, close-on-exec). */
static void seqpacket_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
			 0);
}

/*
 * Sends a valid REQUEST's bytes with the N descriptors SEND over a socket pair and checks
 * that door_recv refuses it with WANT and leaves no descriptor behind.
 */
static void assert_request_refused(const int *send, size_t n, int want)
{
	struct door_message m = request_for(6379), out;
	uint8_t data[DOOR_MESSAGE_SIZE_MAX];
	int sv[2], got[8], before;
	size_t ngot = 99;

	seqpacket_pair(sv);
	before = fd_count();
	assert_int_equal(door_message_encode(&m, data, sizeof data), DOOR_REQUEST_SIZE);
	send_raw(sv[0], data, DOOR_REQUEST_SIZE, send, n);
	assert_int_equal(door_recv(sv[1], &out, got, 8, &ngot), want);
	assert_int_equal(ngot, 99);
	assert_int_equal(fd_count(), before);
	close(sv[0]);
	close(sv[1]);
}

static void dup_n(int fd, int *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		assert_true(out[i] >= 0);
	}
}

/* ----- names ----- */

static void assert_name(const void *sa, socklen_t len, unsigned long netns, const char *want)
{
	char buf[DOOR_NAME_SIZE];
	int n = door_name(buf, sizeof buf, sa, len, netns);

	assert_int_equal(n, (int)strlen(want) + 1);
	assert_int_equal(buf[0], '\0');
	assert_memory_equal(buf + 1, want, strlen(want));
}

static void test_name_of_ipv4_address(void **state)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 8080);

	assert_name(&in, sizeof in, NETNS, "viaudit/4026531840/127.0.0.1:8080");
}

static void test_name_of_ipv6_address_is_bracketed(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("::1", 6379);

	assert_name(&in6, sizeof in6, NETNS, "viaudit/4026531840/[::1]:6379");
}

static void test_name_of_ipv4_wildcard(void **state)
{
	struct sockaddr_in in = sockaddr_v4("0.0.0.0", 80);

	assert_name(&in, sizeof in, NETNS, "viaudit/4026531840/0.0.0.0:80");
}

static void test_name_of_ipv6_wildcard(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("::", 443);

	assert_name(&in6, sizeof in6, NETNS, "viaudit/4026531840/[::]:443");
}

static void test_name_of_ipv4_mapped_address_is_ipv4(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("::ffff:10.0.0.7", 5432);

	assert_name(&in6, sizeof in6, NETNS, "viaudit/4026531840/10.0.0.7:5432");
}

static void test_name_of_scoped_ipv6_address_carries_scope(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("fe80::1", 22);

	in6.sin6_scope_id = 3;
	assert_name(&in6, sizeof in6, NETNS, "viaudit/4026531840/[fe80::1%3]:22");
}

static void test_names_in_other_netns_differ(void **state)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 8080);
	char a[DOOR_NAME_SIZE], b[DOOR_NAME_SIZE];
	int na = door_name(a, sizeof a, (struct sockaddr *)&in, sizeof in, 4026531840ul);
	int nb = door_name(b, sizeof b, (struct sockaddr *)&in, sizeof in, 4026532201ul);

	assert_true(na > 0 && nb > 0);
	assert_false(na == nb && memcmp(a, b, (size_t)na) == 0);
	assert_name(&in, sizeof in, 4026532201ul, "viaudit/4026532201/127.0.0.1:8080");
}

static void test_name_longest_fits_in_sun_path(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("1234:5678:9abc:def0:1234:5678:9abc:def0", 65535);
	char buf[DOOR_NAME_SIZE];

	in6.sin6_scope_id = 0xffffffffu;
	assert_true(door_name(buf, sizeof buf, (struct sockaddr *)&in6, sizeof in6, ~0ul) > 0);
}

static void test_name_too_long_for_buffer_is_refused(void **state)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 8080);
	char buf[16];

	assert_int_equal(door_name(buf, sizeof buf, (struct sockaddr *)&in, sizeof in, NETNS),
			 -ENAMETOOLONG);
}

static void test_name_of_unix_address_is_refused(void **state)
{
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char buf[DOOR_NAME_SIZE];

	assert_int_equal(door_name(buf, sizeof buf, &sa, sizeof sa, NETNS), -EAFNOSUPPORT);
}

/* ----- which doors a connector tries ----- */

static void test_ipv4_connector_tries_exact_then_both_wildcards(void **state)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 80), any = sockaddr_v4("0.0.0.0", 80);
	struct sockaddr_in6 any6 = sockaddr_v6("::", 80);
	struct door_address dest = address_of(&in, sizeof in), out[DOOR_CANDIDATES_MAX];
	struct door_address want_any = address_of(&any, sizeof any);
	struct door_address want_any6 = address_of(&any6, sizeof any6);

	assert_int_equal(door_candidates(&dest, out), 3);
	assert_true(door_address_equal(&out[0], &dest));
	assert_true(door_address_equal(&out[1], &want_any));
	assert_true(door_address_equal(&out[2], &want_any6));
}

static void test_ipv6_connector_tries_exact_then_ipv6_wildcard(void **state)
{
	struct sockaddr_in6 in6 = sockaddr_v6("::1", 80), any6 = sockaddr_v6("::", 80);
	struct door_address dest = address_of(&in6, sizeof in6), out[DOOR_CANDIDATES_MAX];
	struct door_address want_any6 = address_of(&any6, sizeof any6);

	assert_int_equal(door_candidates(&dest, out), 2);
	assert_true(door_address_equal(&out[0], &dest));
	assert_true(door_address_equal(&out[1], &want_any6));
}

static void test_wildcard_destination_is_tried_once(void **state)
{
	struct sockaddr_in any = sockaddr_v4("0.0.0.0", 80);
	struct door_address dest = address_of(&any, sizeof any), out[DOOR_CANDIDATES_MAX];

	assert_int_equal(door_candidates(&dest, out), 2);
	assert_int_equal(out[0].family, AF_INET);
	assert_int_equal(out[1].family, AF_INET6);
}

static void test_v6only_wildcard_listener_does_not_serve_ipv4(void **state)
{
	struct sockaddr_in6 any6 = sockaddr_v6("::", 80), lo6 = sockaddr_v6("::1", 80);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", 80);
	struct door_address l = address_of(&any6, sizeof any6);
	struct door_address d4 = address_of(&lo, sizeof lo), d6 = address_of(&lo6, sizeof lo6);

	assert_true(door_listener_serves(&l, false, &d4));
	assert_false(door_listener_serves(&l, true, &d4));
	assert_true(door_listener_serves(&l, true, &d6));
}

static void test_exact_listener_serves_only_its_address_and_port(void **state)
{
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", 80), other = sockaddr_v4("127.0.0.2", 80);
	struct sockaddr_in port = sockaddr_v4("127.0.0.1", 81);
	struct door_address l = address_of(&lo, sizeof lo);
	struct door_address d_other = address_of(&other, sizeof other);
	struct door_address d_port = address_of(&port, sizeof port);

	assert_true(door_listener_serves(&l, false, &l));
	assert_false(door_listener_serves(&l, false, &d_other));
	assert_false(door_listener_serves(&l, false, &d_port));
}

/* ----- opening and finding doors ----- */

static void test_netns_is_inode_of_proc_self_ns_net(void **state)
{
	unsigned long netns = 0;
	struct stat st;

	assert_int_equal(stat("/proc/self/ns/net", &st), 0);
	assert_int_equal(door_netns(&netns), 0);
	assert_int_equal(netns, (unsigned long)st.st_ino);
}

static void test_connect_without_door_is_refused(void **state)
{
	int holder;
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", port_reserve(&holder));

	assert_int_equal(door_connect((struct sockaddr *)&in, sizeof in), -ECONNREFUSED);
	close(holder);
}

static void test_door_is_nonblocking_seqpacket_close_on_exec(void **state)
{
	int holder;
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", port_reserve(&holder));
	int fd = door_listen((struct sockaddr *)&in, sizeof in), type = 0;
	socklen_t len = sizeof type;

	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
	assert_int_equal(type, SOCK_SEQPACKET);
	close(fd);
	close(holder);
}

static void test_second_door_on_same_address_is_refused(void **state)
{
	int holder;
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", port_reserve(&holder));
	int fd = door_listen((struct sockaddr *)&in, sizeof in);

	assert_true(fd >= 0);
	assert_int_equal(door_listen((struct sockaddr *)&in, sizeof in), -EADDRINUSE);
	close(fd);
	close(holder);
}

static void test_door_on_port_zero_is_refused(void **state)
{
	struct sockaddr_in in = sockaddr_v4("127.0.0.1", 0);

	assert_int_equal(door_listen((struct sockaddr *)&in, sizeof in), -EINVAL);
	assert_int_equal(door_connect((struct sockaddr *)&in, sizeof in), -EINVAL);
}

static void test_connect_finds_ipv4_wildcard_door(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in any = sockaddr_v4("0.0.0.0", port), lo = sockaddr_v4("127.0.0.1", port);
	int l = door_listen((struct sockaddr *)&any, sizeof any);
	int c = door_connect((struct sockaddr *)&lo, sizeof lo);

	assert_true(l >= 0 && c >= 0);
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	close(c);
	close(l);
	close(holder);
}

static void test_ipv4_connect_finds_ipv6_wildcard_door(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in6 any6 = sockaddr_v6("::", port);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", port);
	int l = door_listen((struct sockaddr *)&any6, sizeof any6);
	int c = door_connect((struct sockaddr *)&lo, sizeof lo);

	assert_true(l >= 0 && c >= 0);
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	close(c);
	close(l);
	close(holder);
}

static void test_ipv6_connect_does_not_find_ipv4_wildcard_door(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in any = sockaddr_v4("0.0.0.0", port);
	struct sockaddr_in6 lo6 = sockaddr_v6("::1", port);
	int l = door_listen((struct sockaddr *)&any, sizeof any);

	assert_true(l >= 0);
	assert_int_equal(door_connect((struct sockaddr *)&lo6, sizeof lo6), -ECONNREFUSED);
	close(l);
	close(holder);
}

static void test_connect_prefers_exact_door_to_wildcard(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in any = sockaddr_v4("0.0.0.0", port), lo = sockaddr_v4("127.0.0.1", port);
	int wild = door_listen((struct sockaddr *)&any, sizeof any);
	int exact = door_listen((struct sockaddr *)&lo, sizeof lo);
	int c = door_connect((struct sockaddr *)&lo, sizeof lo);
	int a;

	assert_true(wild >= 0 && exact >= 0 && c >= 0);
	a = door_accept(exact);
	assert_true(a >= 0);
	assert_int_equal(door_accept(wild), -EAGAIN);
	close(a);
	close(c);
	close(exact);
	close(wild);
	close(holder);
}

/* ----- a request and its answer over a real door ----- */

static void test_request_and_accept_round_trip_with_memfd_and_eventfds(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", port);
	struct door_message req = request_for(port), got, answer = { .type = DOOR_MESSAGE_ACCEPT };
	int l, c, a, sent[DOOR_REQUEST_FDS], fds[DOOR_MESSAGE_FDS_MAX];
	size_t nfds = 0, nanswer_fds = 99;
	unsigned char *mine, *theirs;
	uint64_t one = 1, value = 0;
	int error = 0;

	l = door_listen((struct sockaddr *)&lo, sizeof lo);
	assert_true(l >= 0);
	c = door_connect((struct sockaddr *)&lo, sizeof lo);
	assert_true(c >= 0);
	assert_int_equal(door_peer_allowed(c, false), 0);

	/* The connector sends its request with the memfd and the eventfds. */
	request_fds_create(sent);
	mine = memfd_seal_map(sent[DOOR_FD_MEMFD], RING, &error);
	assert_true(mine != MAP_FAILED);
	assert_int_equal(door_send(c, &req, sent, DOOR_REQUEST_FDS), 0);

	/* The listener takes it. */
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_peer_allowed(a, false), 0);
	assert_int_equal(door_recv(a, &got, fds, DOOR_MESSAGE_FDS_MAX, &nfds), 0);
	assert_int_equal(got.type, DOOR_MESSAGE_REQUEST);
	assert_int_equal(nfds, DOOR_REQUEST_FDS);
	assert_memory_equal(got.request.token, req.request.token, DOOR_TOKEN_SIZE);
	assert_true(door_address_equal(&got.request.source, &req.request.source));
	assert_int_equal(got.request.ring_size, RING);
	for (size_t i = 0; i < nfds; i++)
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);

	/* The memfd is the connector's memory, and the eventfds are the connector's. */
	assert_int_equal(memfd_seal_check(fds[DOOR_FD_MEMFD], RING), 0);
	theirs = memfd_seal_map(fds[DOOR_FD_MEMFD], RING, &error);
	assert_true(theirs != MAP_FAILED);
	mine[100] = 0x42;
	assert_int_equal(theirs[100], 0x42);
	assert_int_equal(write(fds[DOOR_FD_LISTENER_WAKE], &one, sizeof one), (ssize_t)sizeof one);
	assert_int_equal(read(sent[DOOR_FD_LISTENER_WAKE], &value, sizeof value),
			 (ssize_t)sizeof value);
	assert_int_equal(value, 1);

	/* The listener answers; the connector checks the answer belongs to its request. */
	memcpy(answer.accept.token, got.request.token, DOOR_TOKEN_SIZE);
	answer.accept.ring_size = RING;
	assert_int_equal(door_send(a, &answer, NULL, 0), 0);
	assert_int_equal(door_wait(c, POLLIN, WAIT_MS), 0);
	assert_int_equal(door_recv(c, &got, NULL, 0, &nanswer_fds), 0);
	assert_int_equal(got.type, DOOR_MESSAGE_ACCEPT);
	assert_int_equal(nanswer_fds, 0);
	assert_int_equal(door_accept_check(&req.request, &got.accept), 0);

	memfd_seal_unmap(mine, RING);
	memfd_seal_unmap(theirs, RING);
	fds_close(fds, nfds);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(a);
	close(c);
	close(l);
	close(holder);
}

/* ----- putting a request back on a shared door (FORWARD) ----- */

static void test_connect_listener_reaches_the_same_door(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", port);
	int l = door_listen((struct sockaddr *)&lo, sizeof lo);
	int c, a;

	assert_true(l >= 0);
	c = door_connect_listener(l);
	assert_true(c >= 0);
	assert_true(fcntl(c, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(c, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_peer_allowed(a, false), 0);
	close(a);
	close(c);
	close(l);
	close(holder);
}

static void test_connect_listener_without_name_is_refused(void **state)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(door_connect_listener(fd), -EINVAL);
	close(fd);
}

/*
 * A worker takes a connector's request off the door, puts it back with FORWARD (the
 * connector's door connection as the fourth descriptor) and closes every copy it had; the
 * next worker gets all of it, answers on the connector's door connection, and the connector
 * reads that answer.
 */
static void test_forward_hands_request_and_connector_door_to_next_taker(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", port);
	struct door_message req = request_for(port), got, answer = { .type = DOOR_MESSAGE_ACCEPT };
	int l, c, a, f, b, sent[DOOR_REQUEST_FDS], fds[DOOR_MESSAGE_FDS_MAX], fwd[DOOR_FORWARD_FDS];
	size_t nfds = 0, nanswer_fds = 99;
	unsigned char *mine, *theirs;
	int error = 0, before;

	l = door_listen((struct sockaddr *)&lo, sizeof lo);
	assert_true(l >= 0);
	c = door_connect((struct sockaddr *)&lo, sizeof lo);
	assert_true(c >= 0);
	request_fds_create(sent);
	mine = memfd_seal_map(sent[DOOR_FD_MEMFD], RING, &error);
	assert_true(mine != MAP_FAILED);
	assert_int_equal(door_send(c, &req, sent, DOOR_REQUEST_FDS), 0);
	before = fd_count();

	/* The first worker: takes it, puts it back, keeps nothing. */
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_recv(a, &got, fds, DOOR_MESSAGE_FDS_MAX, &nfds), 0);
	assert_int_equal(nfds, DOOR_REQUEST_FDS);
	got.type = DOOR_MESSAGE_FORWARD;
	memcpy(fwd, fds, sizeof(int) * DOOR_REQUEST_FDS);
	fwd[DOOR_FD_CONNECTOR_DOOR] = a;
	f = door_connect_listener(l);
	assert_true(f >= 0);
	assert_int_equal(door_send(f, &got, fwd, DOOR_FORWARD_FDS), 0);
	close(f);
	fds_close(fwd, DOOR_FORWARD_FDS);
	assert_int_equal(fd_count(), before);

	/* The next one: the message outlived the forwarder's close, descriptors and all. */
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	b = door_accept(l);
	assert_true(b >= 0);
	nfds = 0;
	assert_int_equal(door_recv(b, &got, fds, DOOR_MESSAGE_FDS_MAX, &nfds), 0);
	assert_int_equal(got.type, DOOR_MESSAGE_FORWARD);
	assert_int_equal(nfds, DOOR_FORWARD_FDS);
	assert_memory_equal(got.request.token, req.request.token, DOOR_TOKEN_SIZE);
	assert_true(door_address_equal(&got.request.source, &req.request.source));
	assert_int_equal(door_peer_allowed(fds[DOOR_FD_CONNECTOR_DOOR], false), 0);
	theirs = memfd_seal_map(fds[DOOR_FD_MEMFD], RING, &error);
	assert_true(theirs != MAP_FAILED);
	mine[7] = 0x5a;
	assert_int_equal(theirs[7], 0x5a);

	/* The answer goes to the connector over its own door connection. */
	memcpy(answer.accept.token, got.request.token, DOOR_TOKEN_SIZE);
	answer.accept.ring_size = RING;
	assert_int_equal(door_send(fds[DOOR_FD_CONNECTOR_DOOR], &answer, NULL, 0), 0);
	assert_int_equal(door_wait(c, POLLIN, WAIT_MS), 0);
	assert_int_equal(door_recv(c, &got, NULL, 0, &nanswer_fds), 0);
	assert_int_equal(got.type, DOOR_MESSAGE_ACCEPT);
	assert_int_equal(door_accept_check(&req.request, &got.accept), 0);

	memfd_seal_unmap(mine, RING);
	memfd_seal_unmap(theirs, RING);
	fds_close(fds, nfds);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(b);
	close(c);
	close(l);
	close(holder);
}

static void test_forward_without_door_connection_is_refused_and_fds_closed(void **state)
{
	struct door_message m = request_for(6379), out;
	int sv[2], send[DOOR_FORWARD_FDS], got[8], before;
	size_t ngot = 99;

	m.type = DOOR_MESSAGE_FORWARD;
	seqpacket_pair(sv);
	request_fds_create(send);
	send[DOOR_FD_CONNECTOR_DOOR] = eventfd(0, EFD_CLOEXEC); /* not a door connection */
	assert_true(send[DOOR_FD_CONNECTOR_DOOR] >= 0);
	assert_int_equal(door_send(sv[0], &m, send, DOOR_FORWARD_FDS), 0);
	fds_close(send, DOOR_FORWARD_FDS);
	before = fd_count();
	assert_int_equal(door_recv(sv[1], &out, got, 8, &ngot), -EPROTO);
	assert_int_equal(ngot, 99);
	assert_int_equal(fd_count(), before);
	close(sv[0]);
	close(sv[1]);
}

/*
 * What a drain that gives up on a connection relies on: once the taker shuts its reading
 * side, the connector's send fails (EPIPE), and a message sent just before is still read.
 */
static void test_reader_shut_fails_later_sends_and_keeps_earlier_message(void **state)
{
	struct door_message m = request_for(6379), out;
	int sv[2], fds[DOOR_REQUEST_FDS], got[DOOR_MESSAGE_FDS_MAX];
	size_t ngot = 0;

	seqpacket_pair(sv);
	request_fds_create(fds);
	assert_int_equal(door_send(sv[0], &m, fds, DOOR_REQUEST_FDS), 0);
	assert_int_equal(shutdown(sv[1], SHUT_RD), 0);
	assert_int_equal(door_send(sv[0], &m, fds, DOOR_REQUEST_FDS), -EPIPE);
	assert_int_equal(door_recv(sv[1], &out, got, DOOR_MESSAGE_FDS_MAX, &ngot), 0);
	assert_int_equal(ngot, DOOR_REQUEST_FDS);
	assert_int_equal(door_recv(sv[1], &out, got, 0, &ngot), -ECONNRESET);
	fds_close(got, DOOR_REQUEST_FDS);
	fds_close(fds, DOOR_REQUEST_FDS);
	close(sv[0]);
	close(sv[1]);
}

static void test_listener_keeps_serving_after_malformed_message(void **state)
{
	int holder;
	uint16_t port = port_reserve(&holder);
	struct sockaddr_in lo = sockaddr_v4("127.0.0.1", port);
	struct door_message req = request_for(port), got;
	int l, bad, good, a, sent[DOOR_REQUEST_FDS], fds[DOOR_MESSAGE_FDS_MAX];
	size_t nfds = 0;

	l = door_listen((struct sockaddr *)&lo, sizeof lo);
	assert_true(l >= 0);
	bad = door_connect((struct sockaddr *)&lo, sizeof lo);
	good = door_connect((struct sockaddr *)&lo, sizeof lo);
	assert_true(bad >= 0 && good >= 0);

	send_raw(bad, "GET / HTTP/1.0\r\n\r\n", 18, NULL, 0);
	request_fds_create(sent);
	assert_int_equal(door_send(good, &req, sent, DOOR_REQUEST_FDS), 0);

	/* The first connector's garbage is refused, and only its connection is dropped. */
	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_recv(a, &got, fds, DOOR_MESSAGE_FDS_MAX, &nfds), -EBADMSG);
	close(a);

	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_recv(a, &got, fds, DOOR_MESSAGE_FDS_MAX, &nfds), 0);
	assert_memory_equal(got.request.token, req.request.token, DOOR_TOKEN_SIZE);
	assert_int_equal(nfds, DOOR_REQUEST_FDS);

	fds_close(fds, nfds);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(a);
	close(bad);
	close(good);
	close(l);
	close(holder);
}

/* ----- malformed messages and wrong descriptors ----- */

static void test_message_truncated_by_one_byte_is_refused_and_fds_closed(void **state)
{
	struct door_message m = request_for(6379), out;
	uint8_t data[DOOR_MESSAGE_SIZE_MAX];
	int sv[2], sent[DOOR_REQUEST_FDS], got[DOOR_MESSAGE_FDS_MAX], before;
	size_t ngot = 0;

	seqpacket_pair(sv);
	before = fd_count();
	assert_int_equal(door_message_encode(&m, data, sizeof data), DOOR_REQUEST_SIZE);
	request_fds_create(sent);
	send_raw(sv[0], data, DOOR_REQUEST_SIZE - 1, sent, DOOR_REQUEST_FDS);
	fds_close(sent, DOOR_REQUEST_FDS);
	assert_int_equal(door_recv(sv[1], &out, got, DOOR_MESSAGE_FDS_MAX, &ngot), -EBADMSG);
	assert_int_equal(fd_count(), before);
	close(sv[0]);
	close(sv[1]);
}

static void test_message_longer_than_any_is_refused(void **state)
{
	uint8_t data[DOOR_MESSAGE_SIZE_MAX * 2];
	struct door_message m = request_for(6379), out;
	int sv[2];
	size_t ngot = 0;

	seqpacket_pair(sv);
	memset(data, 0, sizeof data);
	assert_int_equal(door_message_encode(&m, data, sizeof data), DOOR_REQUEST_SIZE);
	send_raw(sv[0], data, sizeof data, NULL, 0);
	assert_int_equal(door_recv(sv[1], &out, NULL, 0, &ngot), -EBADMSG);
	close(sv[0]);
	close(sv[1]);
}

static void test_request_with_two_fds_is_refused_and_fds_closed(void **state)
{
	int sent[DOOR_REQUEST_FDS];

	request_fds_create(sent);
	assert_request_refused(sent, 2, -EPROTO);
	fds_close(sent, DOOR_REQUEST_FDS);
}

static void test_request_with_four_fds_is_refused_and_fds_closed(void **state)
{
	int sent[4];

	request_fds_create(sent);
	sent[3] = eventfd(0, EFD_CLOEXEC);
	assert_true(sent[3] >= 0);
	assert_request_refused(sent, 4, -EPROTO);
	fds_close(sent, 4);
}

static void test_request_with_more_fds_than_fit_is_refused_and_fds_closed(void **state)
{
	int sent[12];

	request_fds_create(sent);
	dup_n(sent[DOOR_FD_LISTENER_WAKE], sent + 3, 9);
	assert_request_refused(sent, 12, -EPROTO);
	fds_close(sent, 12);
}

static void test_request_without_fds_is_refused(void **state)
{
	assert_request_refused(NULL, 0, -EPROTO);
}

static void test_pipe_instead_of_memfd_is_refused_and_fds_closed(void **state)
{
	int sent[DOOR_REQUEST_FDS], p[2];

	request_fds_create(sent);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(sent[DOOR_FD_MEMFD]);
	sent[DOOR_FD_MEMFD] = p[0];
	assert_request_refused(sent, DOOR_REQUEST_FDS, -EPROTO);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(p[1]);
}

static void test_memfd_instead_of_eventfd_is_refused_and_fds_closed(void **state)
{
	int sent[DOOR_REQUEST_FDS];

	request_fds_create(sent);
	close(sent[DOOR_FD_LISTENER_WAKE]);
	sent[DOOR_FD_LISTENER_WAKE] = memfd_seal_create("viaudit-test", RING);
	assert_true(sent[DOOR_FD_LISTENER_WAKE] >= 0);
	assert_request_refused(sent, DOOR_REQUEST_FDS, -EPROTO);
	fds_close(sent, DOOR_REQUEST_FDS);
}

static void test_socket_instead_of_eventfd_is_refused(void **state)
{
	int sent[DOOR_REQUEST_FDS], sv[2];

	request_fds_create(sent);
	seqpacket_pair(sv);
	close(sent[DOOR_FD_CONNECTOR_WAKE]);
	sent[DOOR_FD_CONNECTOR_WAKE] = sv[0];
	assert_request_refused(sent, DOOR_REQUEST_FDS, -EPROTO);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(sv[1]);
}

static void test_accept_with_fds_is_refused_and_fds_closed(void **state)
{
	struct door_message m = { .type = DOOR_MESSAGE_ACCEPT }, out;
	uint8_t data[DOOR_MESSAGE_SIZE_MAX];
	int sv[2], efd, before, got[DOOR_MESSAGE_FDS_MAX];
	size_t ngot = 0;

	memset(m.accept.token, 7, DOOR_TOKEN_SIZE);
	m.accept.ring_size = RING;
	seqpacket_pair(sv);
	before = fd_count();
	efd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(door_message_encode(&m, data, sizeof data), DOOR_ACCEPT_SIZE);
	send_raw(sv[0], data, DOOR_ACCEPT_SIZE, &efd, 1);
	close(efd);
	assert_int_equal(door_recv(sv[1], &out, got, DOOR_MESSAGE_FDS_MAX, &ngot), -EPROTO);
	assert_int_equal(fd_count(), before);
	close(sv[0]);
	close(sv[1]);
}

static void test_request_with_fewer_slots_than_fds_is_refused(void **state)
{
	struct door_message m = request_for(6379), out;
	int sv[2], sent[DOOR_REQUEST_FDS], got[2], before;
	size_t ngot = 0;

	seqpacket_pair(sv);
	before = fd_count();
	request_fds_create(sent);
	assert_int_equal(door_send(sv[0], &m, sent, DOOR_REQUEST_FDS), 0);
	fds_close(sent, DOOR_REQUEST_FDS);
	assert_int_equal(door_recv(sv[1], &out, got, 2, &ngot), -EPROTO);
	assert_int_equal(fd_count(), before);
	close(sv[0]);
	close(sv[1]);
}

static void test_recv_with_nothing_waiting_is_eagain(void **state)
{
	struct door_message out;
	int sv[2];
	size_t ngot = 0;

	seqpacket_pair(sv);
	assert_int_equal(door_recv(sv[1], &out, NULL, 0, &ngot), -EAGAIN);
	close(sv[0]);
	close(sv[1]);
}

static void test_recv_after_peer_closed_is_connreset(void **state)
{
	struct door_message out;
	int sv[2];
	size_t ngot = 0;

	seqpacket_pair(sv);
	close(sv[0]);
	assert_int_equal(door_recv(sv[1], &out, NULL, 0, &ngot), -ECONNRESET);
	close(sv[1]);
}

static void test_send_with_wrong_fd_count_is_refused(void **state)
{
	struct door_message m = request_for(6379);
	int sv[2], sent[DOOR_REQUEST_FDS];

	seqpacket_pair(sv);
	request_fds_create(sent);
	assert_int_equal(door_send(sv[0], &m, sent, 2), -EINVAL);
	assert_int_equal(door_send(sv[0], &m, NULL, 0), -EINVAL);
	fds_close(sent, DOOR_REQUEST_FDS);
	close(sv[0]);
	close(sv[1]);
}

static void test_send_to_closed_peer_is_epipe_without_signal(void **state)
{
	struct door_message m = { .type = DOOR_MESSAGE_ACCEPT };
	int sv[2];

	memset(m.accept.token, 7, DOOR_TOKEN_SIZE);
	m.accept.ring_size = RING;
	seqpacket_pair(sv);
	close(sv[1]);
	assert_int_equal(door_send(sv[0], &m, NULL, 0), -EPIPE);
	close(sv[0]);
}

/* ----- peers ----- */

static void test_peer_with_same_uid_is_allowed(void **state)
{
	int sv[2];

	seqpacket_pair(sv);
	assert_int_equal(door_peer_allowed(sv[0], false), 0);
	assert_int_equal(door_peer_allowed(sv[1], false), 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_peer_with_other_uid_is_refused(void **state)
{
	int holder, l, a, status;
	uint16_t port;
	struct sockaddr_in lo;
	pid_t pid;

	if (geteuid() != 0) {
		print_message("skipped: changing uid needs root\n");
		skip();
	}
	port = port_reserve(&holder);
	lo = sockaddr_v4("127.0.0.1", port);
	l = door_listen((struct sockaddr *)&lo, sizeof lo);
	assert_true(l >= 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int c;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		c = door_connect((struct sockaddr *)&lo, sizeof lo);
		if (c < 0)
			_exit(3);
		/* Stay connected until the listener has looked and hung up. */
		door_wait(c, POLLIN, WAIT_MS);
		_exit(0);
	}
	assert_int_equal(door_wait(l, POLLIN, WAIT_MS), 0);
	a = door_accept(l);
	assert_true(a >= 0);
	assert_int_equal(door_peer_allowed(a, false), -EACCES);
	/* `set door_peers any` lets it in. */
	assert_int_equal(door_peer_allowed(a, true), 0);
	close(a);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(l);
	close(holder);
}

/* ----- small helpers ----- */

static void test_wait_times_out(void **state)
{
	int sv[2];

	seqpacket_pair(sv);
	assert_int_equal(door_wait(sv[1], POLLIN, 10), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
}

static void test_tokens_are_random_and_not_zero(void **state)
{
	static const uint8_t zero[DOOR_TOKEN_SIZE];
	uint8_t a[DOOR_TOKEN_SIZE], b[DOOR_TOKEN_SIZE];

	assert_int_equal(door_token_random(a), 0);
	assert_int_equal(door_token_random(b), 0);
	assert_memory_not_equal(a, zero, DOOR_TOKEN_SIZE);
	assert_memory_not_equal(a, b, DOOR_TOKEN_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_of_ipv4_address),
		cmocka_unit_test(test_name_of_ipv6_address_is_bracketed),
		cmocka_unit_test(test_name_of_ipv4_wildcard),
		cmocka_unit_test(test_name_of_ipv6_wildcard),
		cmocka_unit_test(test_name_of_ipv4_mapped_address_is_ipv4),
		cmocka_unit_test(test_name_of_scoped_ipv6_address_carries_scope),
		cmocka_unit_test(test_names_in_other_netns_differ),
		cmocka_unit_test(test_name_longest_fits_in_sun_path),
		cmocka_unit_test(test_name_too_long_for_buffer_is_refused),
		cmocka_unit_test(test_name_of_unix_address_is_refused),
		cmocka_unit_test(test_ipv4_connector_tries_exact_then_both_wildcards),
		cmocka_unit_test(test_ipv6_connector_tries_exact_then_ipv6_wildcard),
		cmocka_unit_test(test_wildcard_destination_is_tried_once),
		cmocka_unit_test(test_v6only_wildcard_listener_does_not_serve_ipv4),
		cmocka_unit_test(test_exact_listener_serves_only_its_address_and_port),
		cmocka_unit_test(test_netns_is_inode_of_proc_self_ns_net),
		cmocka_unit_test(test_connect_without_door_is_refused),
		cmocka_unit_test(test_door_is_nonblocking_seqpacket_close_on_exec),
		cmocka_unit_test(test_second_door_on_same_address_is_refused),
		cmocka_unit_test(test_door_on_port_zero_is_refused),
		cmocka_unit_test(test_connect_finds_ipv4_wildcard_door),
		cmocka_unit_test(test_ipv4_connect_finds_ipv6_wildcard_door),
		cmocka_unit_test(test_ipv6_connect_does_not_find_ipv4_wildcard_door),
		cmocka_unit_test(test_connect_prefers_exact_door_to_wildcard),
		cmocka_unit_test(test_request_and_accept_round_trip_with_memfd_and_eventfds),
		cmocka_unit_test(test_connect_listener_reaches_the_same_door),
		cmocka_unit_test(test_connect_listener_without_name_is_refused),
		cmocka_unit_test(test_forward_hands_request_and_connector_door_to_next_taker),
		cmocka_unit_test(test_forward_without_door_connection_is_refused_and_fds_closed),
		cmocka_unit_test(test_reader_shut_fails_later_sends_and_keeps_earlier_message),
		cmocka_unit_test(test_listener_keeps_serving_after_malformed_message),
		cmocka_unit_test(test_message_truncated_by_one_byte_is_refused_and_fds_closed),
		cmocka_unit_test(test_message_longer_than_any_is_refused),
		cmocka_unit_test(test_request_with_two_fds_is_refused_and_fds_closed),
		cmocka_unit_test(test_request_with_four_fds_is_refused_and_fds_closed),
		cmocka_unit_test(test_request_with_more_fds_than_fit_is_refused_and_fds_closed),
		cmocka_unit_test(test_request_without_fds_is_refused),
		cmocka_unit_test(test_pipe_instead_of_memfd_is_refused_and_fds_closed),
		cmocka_unit_test(test_memfd_instead_of_eventfd_is_refused_and_fds_closed),
		cmocka_unit_test(test_socket_instead_of_eventfd_is_refused),
		cmocka_unit_test(test_accept_with_fds_is_refused_and_fds_closed),
		cmocka_unit_test(test_request_with_fewer_slots_than_fds_is_refused),
		cmocka_unit_test(test_recv_with_nothing_waiting_is_eagain),
		cmocka_unit_test(test_recv_after_peer_closed_is_connreset),
		cmocka_unit_test(test_send_with_wrong_fd_count_is_refused),
		cmocka_unit_test(test_send_to_closed_peer_is_epipe_without_signal),
		cmocka_unit_test(test_peer_with_same_uid_is_allowed),
		cmocka_unit_test(test_peer_with_other_uid_is_refused),
		cmocka_unit_test(test_wait_times_out),
		cmocka_unit_test(test_tokens_are_random_and_not_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
