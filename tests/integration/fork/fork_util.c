/* A stream continued from any offset by whichever process owns the socket, and /proc counts of viaudit's shared memory, for the fork test programs. */
#include "fork_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_util.h"

#define FORK_CHUNK_MAX 65536

void fork_pump_init(struct fork_pump *pump, int fd, uint64_t send_seed, uint64_t recv_seed,
		    uint64_t send_total, uint64_t recv_total, uint64_t chunk_seed)
{
	memset(pump, 0, sizeof *pump);
	pump->fd = fd;
	pump->send_seed = send_seed;
	pump->recv_seed = recv_seed;
	pump->send_total = send_total;
	pump->recv_total = recv_total;
	pump->chunks = chunk_seed;
}

struct fork_pump_goal fork_pump_goal_end(const struct fork_pump *pump)
{
	struct fork_pump_goal goal = { pump->send_total, pump->recv_total, true };

	return goal;
}

/* The goal's limits, never past the streams' ends. */
static uint64_t fork_pump_send_limit(const struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	return goal->to_end || goal->send_limit > pump->send_total ? pump->send_total
								   : goal->send_limit;
}

static uint64_t fork_pump_recv_limit(const struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	return goal->to_end || goal->recv_limit > pump->recv_total ? pump->recv_total
								   : goal->recv_limit;
}

/* The write side is shut down after the last byte when running to the end, or early if asked. */
static bool fork_pump_shutdown_due(const struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	return !pump->shut && pump->sent == pump->send_total && (goal->to_end || pump->shut_early);
}

bool fork_pump_done(const struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	if (pump->sent < fork_pump_send_limit(pump, goal) ||
	    pump->received < fork_pump_recv_limit(pump, goal) || fork_pump_shutdown_due(pump, goal))
		return false;
	return !goal->to_end || pump->eof;
}

short fork_pump_events(const struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	short events = 0;

	if (pump->sent < fork_pump_send_limit(pump, goal))
		events |= POLLOUT;
	if (pump->received < fork_pump_recv_limit(pump, goal) || (goal->to_end && !pump->eof))
		events |= POLLIN;
	return events;
}

/* A chunk size: half the time small (1..512 bytes), else up to FORK_CHUNK_MAX. */
static size_t fork_pump_chunk(struct fork_pump *pump)
{
	uint64_t r = fault_random_next(&pump->chunks);

	if (r & 1)
		return 1 + (size_t)((r >> 1) % 512);
	return 1 + (size_t)((r >> 1) % FORK_CHUNK_MAX);
}

static void fork_pump_fail(const struct fork_pump *pump, struct stream_result *result,
			   enum stream_outcome outcome, const char *call, int error)
{
	memset(result, 0, sizeof *result);
	result->outcome = outcome;
	result->sent = pump->sent;
	result->received = pump->received;
	result->offset = pump->received;
	result->call = call;
	result->error = error;
}

void fork_pump_result_ok(const struct fork_pump *pump, struct stream_result *result)
{
	fork_pump_fail(pump, result, STREAM_OK, NULL, 0);
}

/* Checks N received bytes against the stream; -1 with RESULT set on a wrong or extra byte. */
static int fork_pump_accept(struct fork_pump *pump, const uint8_t *buf, size_t n,
			    struct stream_result *result)
{
	uint8_t want[FORK_CHUNK_MAX];

	if (pump->received + n > pump->recv_total) {
		fork_pump_fail(pump, result, STREAM_EXTRA, NULL, 0);
		result->offset = pump->recv_total;
		return -1;
	}
	stream_fill(pump->recv_seed, pump->received, want, n);
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != want[i]) {
			fork_pump_fail(pump, result, STREAM_MISMATCH, NULL, 0);
			result->offset = pump->received + i;
			result->got = buf[i];
			result->want = want[i];
			return -1;
		}
	}
	pump->received += n;
	return 0;
}

/* What a receive of 0 bytes means: the EOF, early unless the whole stream is in. */
static int fork_pump_on_eof(struct fork_pump *pump, struct stream_result *result)
{
	if (pump->received < pump->recv_total) {
		fork_pump_fail(pump, result, STREAM_EOF_EARLY, NULL, 0);
		return -1;
	}
	pump->eof = true;
	return 0;
}

static bool fork_pump_transient(int error)
{
	return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

/* The size of the next receive: a chunk up to the limit, or a probe for the EOF past the end. */
static size_t fork_pump_recv_size(struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	uint64_t limit = fork_pump_recv_limit(pump, goal);
	size_t want = fork_pump_chunk(pump);

	if (pump->received < limit)
		return want > limit - pump->received ? (size_t)(limit - pump->received) : want;
	return 4096; /* at the end: anything but the EOF is an extra byte */
}

static size_t fork_pump_send_size(struct fork_pump *pump, const struct fork_pump_goal *goal)
{
	uint64_t limit = fork_pump_send_limit(pump, goal);
	size_t want = fork_pump_chunk(pump);

	return want > limit - pump->sent ? (size_t)(limit - pump->sent) : want;
}

static int fork_pump_shutdown(struct fork_pump *pump, struct stream_result *result)
{
	if (shutdown(pump->fd, SHUT_WR) < 0) {
		fork_pump_fail(pump, result, STREAM_ERROR, "shutdown", errno);
		return -1;
	}
	pump->shut = true;
	return 0;
}

long fork_pump_step(struct fork_pump *pump, short revents, const struct fork_pump_goal *goal,
		    struct stream_result *result)
{
	static uint8_t buf[FORK_CHUNK_MAX];
	short events = fork_pump_events(pump, goal);
	long moved = 0;

	/* Receive whenever the socket says so, errors and hang-ups included: recv tells which. */
	if ((events & POLLIN) && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = recv(pump->fd, buf, fork_pump_recv_size(pump, goal), MSG_DONTWAIT);

		if (n > 0 && fork_pump_accept(pump, buf, (size_t)n, result) < 0)
			return -1;
		if (n == 0 && fork_pump_on_eof(pump, result) < 0)
			return -1;
		if (n < 0 && !fork_pump_transient(errno)) {
			fork_pump_fail(pump, result, STREAM_ERROR, "read", errno);
			return -1;
		}
		if (n > 0)
			moved += n;
	}
	if ((events & POLLOUT) && (revents & (POLLOUT | POLLHUP | POLLERR))) {
		size_t want = fork_pump_send_size(pump, goal);
		ssize_t n;

		stream_fill(pump->send_seed, pump->sent, buf, want);
		n = send(pump->fd, buf, want, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && !fork_pump_transient(errno)) {
			fork_pump_fail(pump, result, STREAM_ERROR, "write", errno);
			return -1;
		}
		if (n > 0) {
			pump->sent += (uint64_t)n;
			moved += n;
		}
	}
	if (fork_pump_shutdown_due(pump, goal) && fork_pump_shutdown(pump, result) < 0)
		return -1;
	return moved;
}

long fork_pump_touch(struct fork_pump *pump, bool read_first, const struct fork_pump_goal *goal,
		     struct stream_result *result)
{
	static uint8_t buf[FORK_CHUNK_MAX];
	ssize_t n;

	if (read_first) {
		size_t want = fork_pump_recv_size(pump, goal);

		do
			n = read(pump->fd, buf, want);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			fork_pump_fail(pump, result, STREAM_ERROR, "read", errno);
			return -1;
		}
		if (n == 0)
			return fork_pump_on_eof(pump, result) < 0 ? -1 : 0;
		return fork_pump_accept(pump, buf, (size_t)n, result) < 0 ? -1 : n;
	}
	size_t want = fork_pump_send_size(pump, goal);

	stream_fill(pump->send_seed, pump->sent, buf, want);
	do
		n = write(pump->fd, buf, want);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		fork_pump_fail(pump, result, STREAM_ERROR, "write", errno);
		return -1;
	}
	pump->sent += (uint64_t)n;
	if (fork_pump_shutdown_due(pump, goal) && fork_pump_shutdown(pump, result) < 0)
		return -1;
	return n;
}

int fork_pump_run(struct fork_pump *pump, const struct fork_pump_goal *goal, int stall_ms,
		  struct stream_result *result)
{
	double last = fault_now_ms();

	for (;;) {
		struct pollfd p = { .fd = pump->fd };
		bool was_eof;
		long moved;
		int r;

		if (fork_pump_shutdown_due(pump, goal) && fork_pump_shutdown(pump, result) < 0)
			return -1;
		if (fork_pump_done(pump, goal)) {
			fork_pump_result_ok(pump, result);
			return 0;
		}
		if (fault_now_ms() - last > stall_ms) {
			fork_pump_fail(pump, result, STREAM_TIMEOUT, NULL, 0);
			return -1;
		}
		p.events = fork_pump_events(pump, goal);
		r = poll(&p, 1, 100);
		if (r < 0 && errno != EINTR) {
			fork_pump_fail(pump, result, STREAM_ERROR, "poll", errno);
			return -1;
		}
		if (r <= 0)
			continue;
		was_eof = pump->eof;
		moved = fork_pump_step(pump, p.revents, goal, result);
		if (moved < 0)
			return -1;
		if (moved > 0 || pump->eof != was_eof)
			last = fault_now_ms();
	}
}

bool fork_result_is_clean_end(const struct stream_result *result)
{
	switch (result->outcome) {
	case STREAM_OK:
	case STREAM_EOF_EARLY:
		return true;
	case STREAM_ERROR:
		/* The kernel's shutdown() of a connection the peer reset says ENOTCONN. */
		if (result->error == ENOTCONN && result->call != NULL &&
		    strcmp(result->call, "shutdown") == 0)
			return true;
		return result->error == ECONNRESET || result->error == EPIPE;
	default:
		return false;
	}
}

/* Counts the lines of FILE that contain FORK_MEMFD_NAME. Returns the count or -errno. */
static int fork_count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	int count = 0;

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, FORK_MEMFD_NAME) != NULL)
			count++;
	fclose(f);
	return count;
}

/* Counts the fds in DIR_PATH whose link contains FORK_MEMFD_NAME. Returns the count or -errno. */
static int fork_count_links(const char *dir_path)
{
	DIR *dir = opendir(dir_path);
	struct dirent *entry;
	int count = 0;

	if (dir == NULL)
		return -errno;
	while ((entry = readdir(dir)) != NULL) {
		char path[PATH_MAX], target[PATH_MAX];
		ssize_t n;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir_path, entry->d_name);
		n = readlink(path, target, sizeof target - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strstr(target, FORK_MEMFD_NAME) != NULL)
			count++;
	}
	closedir(dir);
	return count;
}

int fork_count_memfd(pid_t pid, struct fork_memfd_count *count)
{
	char path[64];
	int r;

	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/maps");
	else
		snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
	r = fork_count_lines(path);
	if (r < 0)
		return r;
	count->maps = r;
	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/fd");
	else
		snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
	r = fork_count_links(path);
	if (r < 0)
		return r;
	count->fds = r;
	return 0;
}

bool fork_wait_memfd_baseline(const struct fork_memfd_count *baseline, int ms,
			      struct fork_memfd_count *now)
{
	double deadline = fault_now_ms() + ms;

	for (;;) {
		if (fork_count_memfd(0, now) < 0)
			now->maps = now->fds = -1;
		else if (now->maps <= baseline->maps && now->fds <= baseline->fds)
			return true;
		if (fault_now_ms() >= deadline)
			return false;
		fault_sleep_ms(10);
	}
}

int fork_pidfd_open(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : (int)fd;
}

const char *fork_format_bytes(uint64_t bytes, char *buf, size_t size)
{
	const uint64_t mib = 1 << 20, kib = 1 << 10;
	unsigned long long whole = (unsigned long long)(bytes / mib);

	if (bytes >= mib && bytes % mib == 0)
		snprintf(buf, size, "%lluM", whole);
	else if (bytes >= mib && bytes % (mib / 2) == 0)
		snprintf(buf, size, "%llu.5M", whole);
	else if (bytes >= kib && bytes % kib == 0)
		snprintf(buf, size, "%lluK", (unsigned long long)(bytes / kib));
	else
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	return buf;
}
