/* The errno checks, compiled into both errno_main and libvia_errno.so so that each object makes its own socket calls. */
#include "errno_checks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Stored in errno before each call, so that an errno the call does not set shows up. */
#define ERRNO_SENTINEL EDOM

/* A file descriptor number the program never opens. */
#define ERRNO_UNUSED_FD 1000

/* Result of one check: the call's return value, and errno read right after it. */
struct errno_outcome {
	long result;
	int error;
	const char *setup_failure; /* non-NULL when the check could not be set up */
};

/* Binds a TCP socket to 127.0.0.1:0 and returns it, filling ADDRESS; -1 on failure. */
static int errno_bound_socket(struct sockaddr_in *address)
{
	socklen_t length = sizeof(*address);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	*address = (struct sockaddr_in){
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)address, sizeof(*address)) < 0 ||
	    getsockname(fd, (struct sockaddr *)address, &length) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* connect() to a port that was just bound and closed, so nothing listens on it. */
static struct errno_outcome errno_check_connect_refused(void)
{
	struct errno_outcome outcome = { 0 };
	struct sockaddr_in address;
	int probe = errno_bound_socket(&address);
	int fd;

	if (probe < 0)
		return (struct errno_outcome){ .setup_failure = "cannot bind 127.0.0.1:0" };
	close(probe);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return (struct errno_outcome){ .setup_failure = "socket failed" };
	errno = ERRNO_SENTINEL;
	outcome.result = connect(fd, (struct sockaddr *)&address, sizeof(address));
	outcome.error = errno;
	close(fd);
	return outcome;
}

/* send() on a descriptor number that was never opened. */
static struct errno_outcome errno_check_send_unused_fd(void)
{
	struct errno_outcome outcome = { 0 };

	if (fcntl(ERRNO_UNUSED_FD, F_GETFD) != -1)
		return (struct errno_outcome){ .setup_failure = "fd 1000 is open" };
	errno = ERRNO_SENTINEL;
	outcome.result = send(ERRNO_UNUSED_FD, "x", 1, MSG_NOSIGNAL);
	outcome.error = errno;
	return outcome;
}

/* send() on -1, which an fd-indexed table must not use as an index. */
static struct errno_outcome errno_check_send_negative_fd(void)
{
	struct errno_outcome outcome = { 0 };

	errno = ERRNO_SENTINEL;
	outcome.result = send(-1, "x", 1, MSG_NOSIGNAL);
	outcome.error = errno;
	return outcome;
}

/*
 * Connects a socket to an in-process listener (a routed connection when the policy selects
 * this object), closes it, then send()s on the closed descriptor: a stale virtual socket
 * entry would answer instead of EBADF.
 */
static struct errno_outcome errno_check_send_closed_fd(void)
{
	struct errno_outcome outcome = { 0 };
	struct sockaddr_in address;
	int listener = errno_bound_socket(&address);
	int fd, accepted;

	if (listener < 0 || listen(listener, 4) < 0) {
		if (listener >= 0)
			close(listener);
		return (struct errno_outcome){ .setup_failure = "cannot listen on 127.0.0.1:0" };
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
		if (fd >= 0)
			close(fd);
		close(listener);
		return (struct errno_outcome){ .setup_failure = "cannot connect to the listener" };
	}
	accepted = accept(listener, NULL, NULL);
	close(listener);
	if (accepted < 0) {
		close(fd);
		return (struct errno_outcome){ .setup_failure = "accept failed" };
	}
	if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
		close(fd);
		close(accepted);
		return (struct errno_outcome){ .setup_failure = "send on the open socket failed" };
	}
	if (close(fd) < 0) {
		close(accepted);
		return (struct errno_outcome){ .setup_failure = "close failed" };
	}
	errno = ERRNO_SENTINEL;
	outcome.result = send(fd, "x", 1, MSG_NOSIGNAL);
	outcome.error = errno;
	close(accepted);
	return outcome;
}

/* connect() with LENGTH bytes of an otherwise valid 127.0.0.1 address. */
static struct errno_outcome errno_connect_with_length(socklen_t length)
{
	struct errno_outcome outcome = { 0 };
	struct sockaddr_storage storage[2];
	struct sockaddr_in *address = (struct sockaddr_in *)storage;
	int fd;

	memset(storage, 0, sizeof(storage));
	address->sin_family = AF_INET;
	address->sin_port = htons(9); /* never reached: the length is refused first */
	address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return (struct errno_outcome){ .setup_failure = "socket failed" };
	errno = ERRNO_SENTINEL;
	outcome.result = connect(fd, (struct sockaddr *)address, length);
	outcome.error = errno;
	close(fd);
	return outcome;
}

/* connect() with one byte less than a struct sockaddr_in. */
static struct errno_outcome errno_check_connect_short_length(void)
{
	return errno_connect_with_length(sizeof(struct sockaddr_in) - 1);
}

/* connect() with a length of zero. */
static struct errno_outcome errno_check_connect_zero_length(void)
{
	return errno_connect_with_length(0);
}

/* connect() with a length larger than any socket address. */
static struct errno_outcome errno_check_connect_oversized_length(void)
{
	return errno_connect_with_length(sizeof(struct sockaddr_storage) + 1);
}

static const struct {
	const char *name;
	int expected;
	struct errno_outcome (*run)(void);
} errno_checks[] = {
	{ "connect-refused", ECONNREFUSED, errno_check_connect_refused },
	{ "send-unused-fd", EBADF, errno_check_send_unused_fd },
	{ "send-negative-fd", EBADF, errno_check_send_negative_fd },
	{ "send-closed-fd", EBADF, errno_check_send_closed_fd },
	{ "connect-short-length", EINVAL, errno_check_connect_short_length },
	{ "connect-zero-length", EINVAL, errno_check_connect_zero_length },
	{ "connect-oversized-length", EINVAL, errno_check_connect_oversized_length },
};

/* The symbolic name of an errno value, or its number when it has none. */
static const char *errno_name(int error, char *buffer, size_t size)
{
	const char *name = strerrorname_np(error);

	if (name != NULL)
		return name;
	snprintf(buffer, size, "%d", error);
	return buffer;
}

int errno_run_checks(const char *who)
{
	int failures = 0;

	for (size_t i = 0; i < sizeof(errno_checks) / sizeof(errno_checks[0]); i++) {
		struct errno_outcome outcome = errno_checks[i].run();
		char got[16], want[16];
		const char *got_name = errno_name(outcome.error, got, sizeof(got));
		const char *want_name = errno_name(errno_checks[i].expected, want, sizeof(want));

		if (outcome.setup_failure != NULL) {
			printf("%s %s FAILED: set-up: %s\n", who, errno_checks[i].name,
			       outcome.setup_failure);
			failures++;
		} else if (outcome.result == -1 && outcome.error == errno_checks[i].expected) {
			printf("%s %s %s ok\n", who, errno_checks[i].name, got_name);
		} else {
			printf("%s %s FAILED: returned %ld with errno %s, expected -1 with %s\n",
			       who, errno_checks[i].name, outcome.result, got_name, want_name);
			failures++;
		}
		fflush(stdout);
	}
	return failures;
}
