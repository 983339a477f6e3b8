/* Unit tests of trace closures: built from prototype strings, they pass 1 to 6 arguments and results through and log each call. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <libc.h>
#include <log.h>

#include "trace_closure.h"
#include "trace_format.h"

/* What the last target saw. */
static struct {
	long long ints[6];
	const void *pointers[6];
	double real;
	const void *caller_pc;
} seen;

static struct trace_proto proto;
static struct trace_closure closure;
static int log_fd = -1;

static int setup(void **state)
{
	memset(&seen, 0, sizeof(seen));
	log_fd = memfd_create("trace-log", MFD_CLOEXEC);
	assert_true(log_fd >= 0);
	vi_log_state.fd = log_fd;
	vi_libc.errno_location = __errno_location;
	trace_output.json = false;
	trace_output.describe_fd = NULL;
	return 0;
}

static int teardown(void **state)
{
	trace_closure_destroy(&closure);
	close(log_fd);
	vi_log_state.fd = -1;
	return 0;
}

/* Builds `closure` around `target` from the declaration `text`; returns the address to call. */
static void *make(const char *text, void *target)
{
	struct trace_proto_error err;
	if (trace_proto_parse(text, strlen(text), &proto, &err) != 0)
		fail_msg("'%s': column %u: %s", text, err.col, err.message);
	assert_int_equal(trace_closure_create(&closure, &proto, target, "libtest.so",
					      (const void *)&seen),
			 0);
	assert_non_null(closure.code);
	assert_ptr_not_equal(closure.code, target);
	return closure.code;
}

/* The log so far, with pid.tid and the duration replaced by P.T and D. */
static const char *logged(void)
{
	static char text[8192];
	static char normal[8192];
	ssize_t n = pread(log_fd, text, sizeof(text) - 1, 0);
	assert_true(n >= 0);
	text[n] = '\0';
	regex_t pid, duration;
	assert_int_equal(regcomp(&pid, "^viaudit: trace: [0-9]+\\.[0-9]+ ", REG_EXTENDED | REG_NEWLINE), 0);
	assert_int_equal(regcomp(&duration, " [0-9]+\\.[0-9]us$", REG_EXTENDED | REG_NEWLINE), 0);
	normal[0] = '\0';
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		regmatch_t m;
		char a[4096], b[4096];
		snprintf(a, sizeof(a), "%s", line);
		if (regexec(&pid, a, 1, &m, 0) == 0) {
			snprintf(b, sizeof(b), "viaudit: trace: P.T %s", a + m.rm_eo);
			snprintf(a, sizeof(a), "%s", b);
		}
		if (regexec(&duration, a, 1, &m, 0) == 0)
			snprintf(a + m.rm_so, sizeof(a) - (size_t)m.rm_so, " Dus");
		strncat(normal, a, sizeof(normal) - strlen(normal) - 2);
		strcat(normal, "\n");
	}
	regfree(&pid);
	regfree(&duration);
	return normal;
}

/* ----- targets with 1 to 6 arguments ----- */

static int target_one(int a)
{
	seen.ints[0] = a;
	seen.caller_pc = trace_closure_caller_pc();
	return a * 2;
}

static long target_two(long a, const char *s)
{
	seen.ints[0] = a;
	seen.pointers[1] = s;
	return a + (long)strlen(s);
}

static void *target_three(void *p, size_t offset, unsigned char c)
{
	seen.pointers[0] = p;
	seen.ints[1] = (long long)offset;
	seen.ints[2] = c;
	return (char *)p + offset + c;
}

static ssize_t target_four(int fd, const void *buf, size_t len, int flags)
{
	seen.ints[0] = fd;
	seen.pointers[1] = buf;
	seen.ints[2] = (long long)len;
	seen.ints[3] = flags;
	return (ssize_t)len;
}

static size_t target_five(short a, unsigned b, long long c, double d, const char *e)
{
	seen.ints[0] = a;
	seen.ints[1] = b;
	seen.ints[2] = c;
	seen.real = d;
	seen.pointers[4] = e;
	return (size_t)a + b + (size_t)c + strlen(e);
}

static long target_six(int a, size_t b, void *c, int d, size_t e, const char *f)
{
	seen.ints[0] = a;
	seen.ints[1] = (long long)b;
	seen.pointers[2] = c;
	seen.ints[3] = d;
	seen.ints[4] = (long long)e;
	seen.pointers[5] = f;
	return -(long)(b + e);
}

static void test_closure_with_one_argument_passes_it_through(void **state)
{
	int (*fn)(int);
	*(void **)&fn = make("int one(int a)", (void *)target_one);
	assert_int_equal(fn(-21), -42);
	assert_int_equal(seen.ints[0], -21);
	assert_string_equal(logged(), "viaudit: trace: P.T libtest.so one(a=-21) = -42 Dus\n");
}

static void test_closure_with_two_arguments_passes_a_string(void **state)
{
	long (*fn)(long, const char *);
	*(void **)&fn = make("long two(long a, const char *s)", (void *)target_two);
	static const char word[] = "hello";
	assert_int_equal(fn(1L << 40, word), (1L << 40) + 5);
	assert_ptr_equal(seen.pointers[1], word);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so two(a=1099511627776, s=\"hello\") = "
			    "1099511627781 Dus\n");
}

static void test_closure_with_three_arguments_returns_a_pointer(void **state)
{
	void *(*fn)(void *, size_t, unsigned char);
	/* `hex`: without it, a void * followed by a size_t would be shown as a buffer. */
	*(void **)&fn = make("void *three(hex void *p, size_t offset, unsigned char c)",
			     (void *)target_three);
	char area[1024];
	assert_ptr_equal(fn(area, 700, 200), area + 900);
	assert_ptr_equal(seen.pointers[0], area);
	assert_int_equal(seen.ints[1], 700);
	assert_int_equal(seen.ints[2], 200);
	char expected[256];
	snprintf(expected, sizeof(expected),
		 "viaudit: trace: P.T libtest.so three(p=%p, offset=700, c=200) = %p Dus\n",
		 (void *)area, (void *)(area + 900));
	assert_string_equal(logged(), expected);
}

static void test_closure_with_four_arguments_shows_buffer_and_flags(void **state)
{
	ssize_t (*fn)(int, const void *, size_t, int);
	*(void **)&fn = make("ssize_t four(int fd, const void *buf, size_t len, flags(msg) int flags)",
			     (void *)target_four);
	static const char data[] = "hello\n\"world\"\x01\xff and more bytes";
	assert_int_equal(fn(7, data, sizeof(data) - 1, MSG_NOSIGNAL | MSG_DONTWAIT), sizeof(data) - 1);
	assert_int_equal(seen.ints[0], 7);
	assert_ptr_equal(seen.pointers[1], data);
	assert_int_equal(seen.ints[3], MSG_NOSIGNAL | MSG_DONTWAIT);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so four(fd=7, buf=30:\"hello\\n\\\"world\\\""
			    "\\x01\\xff \"..., len=30, flags=MSG_DONTWAIT|MSG_NOSIGNAL) = 30 Dus\n");
}

static void test_closure_with_five_arguments_passes_a_double(void **state)
{
	size_t (*fn)(short, unsigned, long long, double, const char *);
	*(void **)&fn = make("size_t five(short a, unsigned b, long long c, double d, const char *e)",
			     (void *)target_five);
	assert_int_equal(fn(-3, 4000000000u, 1LL << 50, 2.5, "xyz"),
			 (size_t)-3 + 4000000000u + (1ULL << 50) + 3);
	assert_int_equal(seen.ints[0], -3);
	assert_int_equal(seen.ints[1], 4000000000u);
	assert_int_equal(seen.ints[2], 1LL << 50);
	assert_true(seen.real == 2.5);
	assert_string_equal(seen.pointers[4], "xyz");
}

static void test_closure_with_six_arguments_passes_pointers_and_sizes(void **state)
{
	long (*fn)(int, size_t, void *, int, size_t, const char *);
	*(void **)&fn = make("long six(int a, size_t b, void *c, int d, size_t e, const char *f)",
			     (void *)target_six);
	int cell;
	assert_int_equal(fn(1, (size_t)1 << 33, &cell, -4, 5, NULL), -(((long)1 << 33) + 5));
	assert_int_equal(seen.ints[0], 1);
	assert_int_equal(seen.ints[1], (long long)1 << 33);
	assert_ptr_equal(seen.pointers[2], &cell);
	assert_int_equal(seen.ints[3], -4);
	assert_int_equal(seen.ints[4], 5);
	assert_null(seen.pointers[5]);
	char expected[256];
	snprintf(expected, sizeof(expected),
		 "viaudit: trace: P.T libtest.so six(a=1, b=8589934592, c=%p, d=-4, e=5, f=NULL) = "
		 "-8589934597 Dus\n",
		 (void *)&cell);
	assert_string_equal(logged(), expected);
}

static int target_variadic(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	seen.ints[0] = fd;
	seen.ints[1] = cmd;
	seen.ints[2] = (long long)va_arg(ap, unsigned long);
	va_end(ap);
	return 0;
}

static void test_closure_passes_the_variadic_word_on(void **state)
{
	int (*fn)(int, int, ...);
	*(void **)&fn = make("int fcntl(int fd, flags(fcntl) int cmd, ...)", (void *)target_variadic);
	assert_int_equal(fn(4, 4, 0x800UL), 0);
	assert_int_equal(seen.ints[0], 4);
	assert_int_equal(seen.ints[1], 4);
	assert_int_equal(seen.ints[2], 0x800);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so fcntl(fd=4, cmd=F_SETFL, arg=0x800) = 0 Dus\n");
}

/* ----- errno, transport, caller ----- */

static int target_refused(int fd, const struct sockaddr *addr, socklen_t len)
{
	errno = ECONNREFUSED;
	return -1;
}

static void test_closure_keeps_the_programs_errno_and_names_it(void **state)
{
	int (*fn)(int, const struct sockaddr *, socklen_t);
	*(void **)&fn = make("int connect(int fd, const struct sockaddr *addr, socklen_t len)",
			     (void *)target_refused);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(5000) };
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	errno = 0;
	assert_int_equal(fn(3, (const struct sockaddr *)&in, sizeof(in)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so connect(fd=3, addr=127.0.0.1:5000, "
			    "len=16) = -1 ECONNREFUSED Dus\n");
}

static int target_efault(int fd, const struct sockaddr *addr, socklen_t len)
{
	errno = EFAULT;
	return -1;
}

static void test_after_efault_pointers_are_not_read(void **state)
{
	int (*fn)(int, const struct sockaddr *, socklen_t);
	*(void **)&fn = make("int bind(int fd, const struct sockaddr *addr, socklen_t len)",
			     (void *)target_efault);
	assert_int_equal(fn(3, (const struct sockaddr *)16, 16), -1);
	assert_int_equal(errno, EFAULT);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so bind(fd=3, addr=0x10, len=16) = -1 EFAULT Dus\n");
}

static const char *describe_seven(int fd)
{
	return fd == 7 ? "shm" : NULL;
}

static void test_call_on_a_virtual_socket_names_its_transport(void **state)
{
	ssize_t (*fn)(int, const void *, size_t, int);
	*(void **)&fn = make("ssize_t send(int fd, const void *buf, size_t len, int flags)",
			     (void *)target_four);
	trace_output.describe_fd = describe_seven;
	fn(7, "ab", 2, 0);
	fn(8, "ab", 2, 0);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so send(fd=7, buf=2:\"ab\", len=2, flags=0) = 2 [shm] Dus\n"
			    "viaudit: trace: P.T libtest.so send(fd=8, buf=2:\"ab\", len=2, flags=0) = 2 Dus\n");
}

static void test_target_sees_the_traced_caller(void **state)
{
	int (*fn)(int);
	*(void **)&fn = make("int one(int a)", (void *)target_one);
	assert_null(trace_closure_caller_pc());
	fn(1);
	assert_ptr_equal(seen.caller_pc, &seen);
	assert_null(trace_closure_caller_pc());
}

/* ----- decoding ----- */

static ssize_t target_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
			       socklen_t *alen)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(6379),
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	memcpy(buf, "pong", 4);
	memcpy(addr, &in6, sizeof(in6));
	*alen = sizeof(in6);
	return 4;
}

static void test_output_buffer_and_address_are_shown_after_the_call(void **state)
{
	ssize_t (*fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	*(void **)&fn = make("ssize_t recvfrom(int fd, void *buf, size_t len, flags(msg) int flags, "
			     "struct sockaddr *addr, socklen_t *alen)",
			     (void *)target_recvfrom);
	char buf[64];
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	assert_int_equal(fn(5, buf, sizeof(buf), MSG_PEEK, (struct sockaddr *)&ss, &alen), 4);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so recvfrom(fd=5, buf=4:\"pong\", len=64, "
			    "flags=MSG_PEEK, addr=[::1]:6379, alen=28) = 4 Dus\n");
}

static int target_socket(int domain, int type, int protocol)
{
	return 9;
}

static void test_constants_and_flag_bits_are_named(void **state)
{
	int (*fn)(int, int, int);
	*(void **)&fn = make("fd int socket(flags(af) int domain, flags(sock) int type, int protocol)",
			     (void *)target_socket);
	fn(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	fn(99, SOCK_DGRAM | 0x10000000, 0);
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so socket(domain=AF_INET6, "
			    "type=SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, protocol=0) = 9 Dus\n"
			    "viaudit: trace: P.T libtest.so socket(domain=99, "
			    "type=SOCK_DGRAM|0x10000000, protocol=0) = 9 Dus\n");
}

static int target_unix(int fd, const struct sockaddr *addr, socklen_t len)
{
	return 0;
}

static void test_unix_addresses_are_shown_by_path(void **state)
{
	int (*fn)(int, const struct sockaddr *, socklen_t);
	*(void **)&fn = make("int connect(int fd, const struct sockaddr *addr, socklen_t len)",
			     (void *)target_unix);
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "\0viaudit/door" };
	fn(3, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 13);
	strcpy(un.sun_path, "/run/x.sock");
	fn(3, (struct sockaddr *)&un, sizeof(un));
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so connect(fd=3, addr=unix:@viaudit/door, "
			    "len=15) = 0 Dus\n"
			    "viaudit: trace: P.T libtest.so connect(fd=3, addr=unix:/run/x.sock, "
			    "len=110) = 0 Dus\n");
}

static ssize_t target_writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt > 1024) {
		errno = EINVAL;
		return -1;
	}
	return (ssize_t)(iov[0].iov_len + iov[1].iov_len);
}

static void test_iovec_is_shown_as_count_length_and_first_bytes(void **state)
{
	ssize_t (*fn)(int, const struct iovec *, int);
	*(void **)&fn = make("ssize_t writev(int fd, const struct iovec *iov, int iovcnt)",
			     (void *)target_writev);
	struct iovec iov[2] = { { "abc", 3 }, { "defghijklmnopqrstuvwxyz", 23 } };
	assert_int_equal(fn(3, iov, 2), 26);
	fn(3, (const struct iovec *)16, 100000); /* refused: the array is not read */
	assert_string_equal(logged(),
			    "viaudit: trace: P.T libtest.so writev(fd=3, iov=[2]26:\"abcdefghijklmnop\"..., "
			    "iovcnt=2) = 26 Dus\n"
			    "viaudit: trace: P.T libtest.so writev(fd=3, iov=0x10, iovcnt=100000) = -1 "
			    "EINVAL Dus\n");
}

static void test_json_output_is_one_object_per_call(void **state)
{
	int (*fn)(int, const struct sockaddr *, socklen_t);
	*(void **)&fn = make("int connect(int fd, const struct sockaddr *addr, socklen_t len)",
			     (void *)target_refused);
	trace_output.json = true;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
	fn(3, (const struct sockaddr *)&in, sizeof(in));
	char text[1024];
	ssize_t n = pread(log_fd, text, sizeof(text) - 1, 0);
	assert_true(n > 0);
	text[n] = '\0';
	regex_t re;
	assert_int_equal(regcomp(&re,
				 "^\\{\"pid\":[0-9]+,\"tid\":[0-9]+,\"caller\":\"libtest.so\","
				 "\"symbol\":\"connect\",\"args\":\\{\"fd\":3,\"addr\":\"0.0.0.0:80\","
				 "\"len\":16\\},\"ret\":-1,\"errno\":\"ECONNREFUSED\",\"us\":[0-9.]+\\}\n$",
				 REG_EXTENDED),
			 0);
	if (regexec(&re, text, 0, NULL, 0) != 0)
		fail_msg("unexpected JSON: %s", text);
	regfree(&re);
}

static void test_long_line_is_cut_and_still_ends_in_newline(void **state)
{
	char buf[64];
	int value = 12345;
	void *args[] = { &value };
	struct trace_proto_error err;
	assert_int_equal(trace_proto_parse("int a_rather_long_function_name(int some_argument)", 50,
					   &proto, &err),
			 0);
	ffi_arg ret = 0;
	struct trace_call call = { .proto = &proto, .caller = "libsomething-long.so.1",
				   .args = args, .ret = &ret };
	size_t n = trace_format_text(&call, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_true(n < sizeof(buf));
	assert_int_equal(buf[n - 1], '\n');
	assert_memory_equal(buf + n - 4, "...\n", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_closure_with_one_argument_passes_it_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_with_two_arguments_passes_a_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_with_three_arguments_returns_a_pointer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_with_four_arguments_shows_buffer_and_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_with_five_arguments_passes_a_double, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_with_six_arguments_passes_pointers_and_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_passes_the_variadic_word_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closure_keeps_the_programs_errno_and_names_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_after_efault_pointers_are_not_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_on_a_virtual_socket_names_its_transport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_sees_the_traced_caller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_buffer_and_address_are_shown_after_the_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_constants_and_flag_bits_are_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_addresses_are_shown_by_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iovec_is_shown_as_count_length_and_first_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_output_is_one_object_per_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_is_cut_and_still_ends_in_newline, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
