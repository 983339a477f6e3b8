/* door_hostile: sends malformed and misleading requests to a live listener's door, each followed by a plain TCP connection that must still work byte for byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "door.h"
#include "door_message.h"
#include "fault_util.h"
#include "memfd_seal.h"
#include "shm_segment.h"
#include "stream.h"

#define HOSTILE_RING_SIZE 65536u
#define HOSTILE_STREAM_BYTES 131072u
/* Longer than a stream_check server waits for one connection, so that one case that fails
 * (the server stuck on it) does not make the next one fail too. */
#define HOSTILE_TIMEOUT_MS 25000
#define HOSTILE_FDS_MAX 5
#define HOSTILE_DATAGRAM_MAX 65536

/* Each case: what is sent over the door before the TCP connection is made. */
enum hostile_kind {
	HOSTILE_SILENT,           /* connect to the door, send nothing */
	HOSTILE_EMPTY,            /* a zero-length message */
	HOSTILE_SHORT_HEADER,     /* 10 bytes: less than a header */
	HOSTILE_TRUNCATED,        /* the first 40 bytes of a request */
	HOSTILE_WRONG_MAGIC,
	HOSTILE_WRONG_VERSION,
	HOSTILE_LENGTH_FIELD,     /* the header's length says 96, the datagram is 88 */
	HOSTILE_TOO_LONG,         /* 89 bytes, and the length field says 89 */
	HOSTILE_OVERSIZED,        /* a 64 KiB datagram */
	HOSTILE_WRONG_TYPE,       /* an ACCEPT sent to the listener, with the request's fds */
	HOSTILE_BAD_RING_SIZE,    /* ring_size 65537 */
	HOSTILE_UNKNOWN_FLAGS,
	HOSTILE_ZERO_FDS,
	HOSTILE_TWO_FDS,
	HOSTILE_FIVE_FDS,
	HOSTILE_PIPE_MEMFD,       /* a pipe where the memfd goes */
	HOSTILE_PIPE_EVENTFD,     /* a pipe where a wake eventfd goes */
	HOSTILE_UNSEALED_MEMFD,
	HOSTILE_SMALL_MEMFD,      /* sealed, laid out for a ring half the size */
	HOSTILE_LARGE_MEMFD,      /* sealed, laid out for a ring twice the size */
	HOSTILE_BAD_SEGMENT,      /* sealed, the right size, but no segment header in it */
	HOSTILE_WRONG_DESTINATION, /* a valid request for another port, sent to this door */
	HOSTILE_UNMATCHED_SOURCE, /* a valid request from a source no TCP connection comes from */
	HOSTILE_COUNT
};

static const char *const hostile_names[HOSTILE_COUNT] = {
	[HOSTILE_SILENT] = "silent",
	[HOSTILE_EMPTY] = "empty",
	[HOSTILE_SHORT_HEADER] = "short-header",
	[HOSTILE_TRUNCATED] = "truncated",
	[HOSTILE_WRONG_MAGIC] = "wrong-magic",
	[HOSTILE_WRONG_VERSION] = "wrong-version",
	[HOSTILE_LENGTH_FIELD] = "length-field",
	[HOSTILE_TOO_LONG] = "too-long",
	[HOSTILE_OVERSIZED] = "oversized",
	[HOSTILE_WRONG_TYPE] = "wrong-type",
	[HOSTILE_BAD_RING_SIZE] = "bad-ring-size",
	[HOSTILE_UNKNOWN_FLAGS] = "unknown-flags",
	[HOSTILE_ZERO_FDS] = "zero-fds",
	[HOSTILE_TWO_FDS] = "two-fds",
	[HOSTILE_FIVE_FDS] = "five-fds",
	[HOSTILE_PIPE_MEMFD] = "pipe-as-memfd",
	[HOSTILE_PIPE_EVENTFD] = "pipe-as-eventfd",
	[HOSTILE_UNSEALED_MEMFD] = "unsealed-memfd",
	[HOSTILE_SMALL_MEMFD] = "small-memfd",
	[HOSTILE_LARGE_MEMFD] = "large-memfd",
	[HOSTILE_BAD_SEGMENT] = "bad-segment",
	[HOSTILE_WRONG_DESTINATION] = "wrong-destination",
	[HOSTILE_UNMATCHED_SOURCE] = "unmatched-source",
};

/* A message ready to send: bytes and descriptors (owned: closed after sending). */
struct hostile_message {
	uint8_t bytes[HOSTILE_DATAGRAM_MAX];
	size_t len;
	int fds[HOSTILE_FDS_MAX];
	size_t nfds;
};

static void hostile_usage(FILE *out)
{
	fprintf(out,
		"usage: door_hostile PORT\n"
		"  Finds the door of the routed listener at 127.0.0.1:PORT (a stream_check server)\n"
		"  and, for each of %d hostile cases, opens a door connection, sends the case's\n"
		"  message and descriptors, then makes a plain TCP connection and runs the\n"
		"  stream_check protocol over it. Prints one line per case: the door's answer and\n"
		"  the stream's verdict. Exit 0 when every stream was right and no hostile request\n"
		"  was accepted, 1 otherwise, 77 when the listener has no door.\n",
		HOSTILE_COUNT);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A loopback door_address with PORT. */
static struct door_address hostile_address(unsigned port)
{
	struct door_address a;

	memset(&a, 0, sizeof a);
	a.family = AF_INET;
	a.port = (uint16_t)port;
	a.addr[0] = 127;
	a.addr[3] = 1;
	return a;
}

/* A TCP socket bound to 127.0.0.1 at a port the kernel picks. Returns the fd or -errno. */
static int hostile_bound_socket(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A memfd of SIZE bytes laid out as a segment for RING_SIZE (when LAYOUT), sealed or not. */
static int hostile_memfd(size_t size, size_t ring_size, bool sealed, bool layout)
{
	int fd;

	if (sealed) {
		fd = memfd_seal_create("viaudit-hostile", size);
		if (fd < 0)
			return fd;
	} else {
		fd = memfd_create("viaudit-hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
			return -errno;
	}
	if (layout) {
		void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (base == MAP_FAILED)
			return -errno;
		shm_segment_init(base, size, ring_size);
		munmap(base, size);
	}
	return fd;
}

static int hostile_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

/*
 * Builds case KIND: a request from SOURCE_PORT to 127.0.0.1:PORT with a proper segment and
 * eventfds, then spoiled the case's way. Returns 0 or -errno.
 */
static int hostile_build(enum hostile_kind kind, unsigned port, unsigned source_port,
			 struct hostile_message *m)
{
	struct door_message msg;
	size_t segment = (size_t)shm_segment_size(HOSTILE_RING_SIZE);
	int pipe_fds[2];
	long len;

	memset(&msg, 0, sizeof msg);
	msg.type = DOOR_MESSAGE_REQUEST;
	msg.request.source = hostile_address(source_port);
	msg.request.destination = hostile_address(port);
	if (kind == HOSTILE_WRONG_DESTINATION)
		msg.request.destination.port = (uint16_t)(port == 65535 ? 1 : port + 1);
	if (door_token_random(msg.request.token) < 0)
		return -EIO;
	msg.request.ring_size = HOSTILE_RING_SIZE;
	if (kind == HOSTILE_WRONG_TYPE) {
		struct door_request request = msg.request;

		msg.type = DOOR_MESSAGE_ACCEPT;
		memcpy(msg.accept.token, request.token, DOOR_TOKEN_SIZE);
		msg.accept.status = 0;
		msg.accept.ring_size = HOSTILE_RING_SIZE;
	}
	len = door_message_encode(&msg, m->bytes, sizeof m->bytes);
	if (len < 0)
		return (int)len;
	m->len = (size_t)len;

	m->nfds = 3;
	m->fds[0] = hostile_memfd(segment, HOSTILE_RING_SIZE, true, true);
	m->fds[1] = hostile_eventfd();
	m->fds[2] = hostile_eventfd();

	switch (kind) {
	case HOSTILE_SILENT:
	case HOSTILE_EMPTY:
		m->len = 0;
		break;
	case HOSTILE_SHORT_HEADER: m->len = 10; break;
	case HOSTILE_TRUNCATED: m->len = 40; break;
	case HOSTILE_WRONG_MAGIC: m->bytes[0] ^= 0xff; break;
	case HOSTILE_WRONG_VERSION: m->bytes[4] = 99; break;
	case HOSTILE_LENGTH_FIELD: put_u32(m->bytes + 8, 96); break;
	case HOSTILE_TOO_LONG:
		m->bytes[m->len] = 0;
		m->len++;
		put_u32(m->bytes + 8, (uint32_t)m->len);
		break;
	case HOSTILE_OVERSIZED:
		memset(m->bytes + m->len, 0xa5, sizeof m->bytes - m->len);
		m->len = sizeof m->bytes;
		break;
	case HOSTILE_BAD_RING_SIZE: put_u32(m->bytes + 80, HOSTILE_RING_SIZE + 1); break;
	case HOSTILE_UNKNOWN_FLAGS: put_u32(m->bytes + 84, 0x80000000u); break;
	case HOSTILE_ZERO_FDS: m->nfds = 0; break;
	case HOSTILE_TWO_FDS: m->nfds = 2; break;
	case HOSTILE_FIVE_FDS:
		m->fds[3] = hostile_eventfd();
		m->fds[4] = hostile_eventfd();
		m->nfds = 5;
		break;
	case HOSTILE_PIPE_MEMFD:
	case HOSTILE_PIPE_EVENTFD:
		if (pipe2(pipe_fds, O_CLOEXEC) < 0)
			return -errno;
		if (kind == HOSTILE_PIPE_MEMFD) {
			close(m->fds[0]);
			m->fds[0] = pipe_fds[0];
		} else {
			close(m->fds[1]);
			m->fds[1] = pipe_fds[0];
		}
		close(pipe_fds[1]);
		break;
	case HOSTILE_UNSEALED_MEMFD:
		close(m->fds[0]);
		m->fds[0] = hostile_memfd(segment, HOSTILE_RING_SIZE, false, true);
		break;
	case HOSTILE_SMALL_MEMFD:
	case HOSTILE_LARGE_MEMFD: {
		size_t ring = kind == HOSTILE_SMALL_MEMFD ? HOSTILE_RING_SIZE / 2 : HOSTILE_RING_SIZE * 2;

		close(m->fds[0]);
		m->fds[0] = hostile_memfd((size_t)shm_segment_size(ring), ring, true, true);
		break;
	}
	case HOSTILE_BAD_SEGMENT:
		close(m->fds[0]);
		m->fds[0] = hostile_memfd(segment, HOSTILE_RING_SIZE, true, false);
		break;
	case HOSTILE_WRONG_TYPE:
	case HOSTILE_WRONG_DESTINATION:
	case HOSTILE_UNMATCHED_SOURCE:
	case HOSTILE_COUNT:
		break;
	}
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i] < 0)
			return m->fds[i];
	/* Descriptors the case leaves out are closed now. */
	for (size_t i = m->nfds; i < 3; i++)
		close(m->fds[i]);
	return 0;
}

/* Connects a new SOCK_SEQPACKET socket to the door called NAME (NAME_LEN bytes). Returns the fd or -errno. */
static int hostile_door_connect(const char *name, int name_len)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, (size_t)name_len);
	if (connect(fd, (struct sockaddr *)&sun,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)name_len)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Sends M (maybe without bytes) over the door FD. Returns 0 or -errno. */
static int hostile_send(int fd, const struct hostile_message *m)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * HOSTILE_FDS_MAX)];
	} control;
	struct iovec iov = { .iov_base = (void *)m->bytes, .iov_len = m->len };
	struct msghdr mh;

	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (m->nfds > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof control);
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
		memcpy(CMSG_DATA(cm), m->fds, sizeof(int) * m->nfds);
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/*
 * What the listener answered on the door FD, within 200 ms, into ANSWER. Returns true when
 * it ACCEPTED the request (which no case here may get).
 */
static bool hostile_answer(int fd, char *answer, size_t size)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t buf[DOOR_MESSAGE_SIZE_MAX + 1];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} control;
	struct door_message msg;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
	struct msghdr mh;
	ssize_t n;

	if (poll(&p, 1, 200) <= 0) {
		snprintf(answer, size, "no answer");
		return false;
	}
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof control.buf;
	n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int got;

				memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
				close(got);
			}
	}
	if (n < 0) {
		snprintf(answer, size, "door %s", fault_errno_name(errno));
		return false;
	}
	if (n == 0) {
		snprintf(answer, size, "door closed");
		return false;
	}
	if (door_message_decode(buf, (size_t)n, &msg) < 0 || msg.type != DOOR_MESSAGE_ACCEPT) {
		snprintf(answer, size, "answered %zd bytes that are no ACCEPT", n);
		return false;
	}
	if (msg.accept.status != 0) {
		snprintf(answer, size, "refused with %s", fault_errno_name(msg.accept.status));
		return false;
	}
	snprintf(answer, size, "ACCEPTED");
	return true;
}

/* Runs case KIND against the listener at PORT whose door is NAME. Returns 0 when it held. */
static int hostile_run_case(enum hostile_kind kind, unsigned port, const char *name, int name_len)
{
	struct hostile_message *m = calloc(1, sizeof *m);
	struct stream_result result;
	uint8_t header[STREAM_HEADER_SIZE];
	char answer[128], sent[128], prefix[320];
	unsigned source_port, spare_port = 0;
	int tcp, spare = -1, door, r;
	bool accepted, tcp_ran;
	uint64_t seed = 1000 + (uint64_t)kind;

	if (m == NULL)
		return -1;
	tcp = hostile_bound_socket(&source_port);
	if (kind == HOSTILE_UNMATCHED_SOURCE)
		spare = hostile_bound_socket(&spare_port);
	if (tcp < 0 || (kind == HOSTILE_UNMATCHED_SOURCE && spare < 0)) {
		printf("case %s: socket: %s\n", hostile_names[kind], strerror(-(tcp < 0 ? tcp : spare)));
		return -1;
	}
	r = hostile_build(kind, port, kind == HOSTILE_UNMATCHED_SOURCE ? spare_port : source_port, m);
	if (r < 0) {
		printf("case %s: cannot build the message: %s\n", hostile_names[kind], strerror(-r));
		return -1;
	}
	door = hostile_door_connect(name, name_len);
	if (door < 0) {
		printf("case %s: door connect: %s (the door is gone)\n", hostile_names[kind],
		       fault_errno_name(-door));
		return -1;
	}
	snprintf(sent, sizeof sent, "sent %zu bytes + %zu fds", m->len, m->nfds);
	if (kind == HOSTILE_SILENT)
		snprintf(sent, sizeof sent, "sent nothing");
	else if ((r = hostile_send(door, m)) < 0)
		snprintf(sent, sizeof sent, "send: %s", fault_errno_name(-r));
	for (size_t i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	free(m);

	/* The TCP connection that follows the request must be plain TCP, byte for byte. */
	r = fault_connect_fd(tcp, port);
	if (r == 0) {
		stream_header_encode(header, HOSTILE_STREAM_BYTES, seed);
		r = fault_write_full(tcp, header, sizeof header, HOSTILE_TIMEOUT_MS);
	}
	tcp_ran = r == 0;
	if (r == 0)
		r = stream_exchange(tcp, HOSTILE_STREAM_BYTES, seed, stream_server_seed(seed), ~seed,
				    HOSTILE_TIMEOUT_MS, &result);
	else
		snprintf(sent + strlen(sent), sizeof sent - strlen(sent), "; tcp connect: %s",
			 fault_errno_name(-r));
	accepted = hostile_answer(door, answer, sizeof answer);
	snprintf(prefix, sizeof prefix, "case %s: %s; door: %s; tcp: ", hostile_names[kind], sent,
		 answer);
	if (tcp_ran)
		stream_result_print(stdout, prefix, &result);
	else
		printf("%snot run\n", prefix);
	close(door);
	close(tcp);
	if (spare >= 0)
		close(spare);
	if (accepted)
		printf("FAIL: case %s: the listener accepted a hostile request\n", hostile_names[kind]);
	return r == 0 && !accepted ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in dest;
	char name[DOOR_NAME_SIZE];
	unsigned long netns;
	uint64_t port;
	int name_len, probe, failed = 0, door_gone = 0;

	if (argc != 2 || fault_parse_u64(argv[1], 1, 65535, &port) < 0) {
		hostile_usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? FAULT_EXIT_OK : FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	memset(&dest, 0, sizeof dest);
	dest.sin_family = AF_INET;
	dest.sin_port = htons((uint16_t)port);
	dest.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (door_netns(&netns) < 0 ||
	    (name_len = door_name(name, sizeof name, (struct sockaddr *)&dest, sizeof dest, netns)) < 0) {
		printf("cannot name the door of 127.0.0.1:%u\n", (unsigned)port);
		return FAULT_EXIT_FAILED;
	}
	printf("door: @%.*s\n", name_len - 1, name + 1);

	probe = hostile_door_connect(name, name_len);
	if (probe < 0) {
		printf("no door: %s (the listener opened none)\n", fault_errno_name(-probe));
		return FAULT_EXIT_SKIP;
	}
	close(probe);

	for (int kind = 0; kind < HOSTILE_COUNT; kind++)
		if (hostile_run_case((enum hostile_kind)kind, (unsigned)port, name, name_len) < 0)
			failed++;

	/* The door itself must still be open for real connectors. */
	probe = hostile_door_connect(name, name_len);
	if (probe < 0) {
		printf("door gone after the hostile cases: %s\n", fault_errno_name(-probe));
		door_gone = 1;
	} else {
		close(probe);
		printf("door still open after the hostile cases\n");
	}
	printf("%d of %d cases held\n", HOSTILE_COUNT - failed, HOSTILE_COUNT);
	return failed == 0 && !door_gone ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}
