/* Loopback sockets, port files, clocks and /proc accounting for the fault and fallback test programs. */
#include "fault_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in fault_loopback(unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

int fault_listen_loopback(int backlog, unsigned *port)
{
	struct sockaddr_in sin = fault_loopback(0);
	socklen_t len = sizeof sin;
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

int fault_connect_fd(int fd, unsigned port)
{
	struct sockaddr_in sin = fault_loopback(port);
	int r;

	do
		r = connect(fd, (struct sockaddr *)&sin, sizeof sin);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int fault_connect_loopback(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return -errno;
	r = fault_connect_fd(fd, port);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int fault_write_port_file(const char *path, unsigned port)
{
	char tmp[PATH_MAX];
	FILE *f;
	int r = 0;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (f == NULL)
		return -errno;
	fprintf(f, "%u %ld\n", port, (long)getpid());
	if (fclose(f) != 0)
		return -errno;
	if (rename(tmp, path) < 0)
		r = -errno;
	return r;
}

int fault_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long value;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return -EINVAL;
	*out = value;
	return 0;
}

double fault_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void fault_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *fault_errno_name(int error)
{
	static __thread char unknown[32];
	const char *name = strerrorname_np(error);

	if (name != NULL)
		return name;
	snprintf(unknown, sizeof unknown, "errno %d", error);
	return unknown;
}

/* Milliseconds left until DEADLINE, for poll(); never negative. */
static int fault_left_ms(double deadline)
{
	double left = deadline - fault_now_ms();

	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left + 1;
}

/* Waits for EVENTS on FD until DEADLINE. Returns 0, -ETIMEDOUT, or -errno. */
static int fault_wait(int fd, short events, double deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int r = poll(&p, 1, fault_left_ms(deadline));

		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int fault_write_full(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;
	double deadline = fault_now_ms() + timeout_ms;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		n = fault_wait(fd, POLLOUT, deadline);
		if (n < 0)
			return (int)n;
	}
	return 0;
}

int fault_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;
	double deadline = fault_now_ms() + timeout_ms;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		n = fault_wait(fd, POLLIN, deadline);
		if (n < 0)
			return (int)n;
	}
	return 0;
}

int fault_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	int count = 0;

	if (dir == NULL)
		return -errno;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		if (atoi(entry->d_name) == dirfd(dir))
			continue;
		count++;
	}
	closedir(dir);
	return count;
}

int fault_count_maps(const char *pattern)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	char line[4096];
	int count = 0;

	if (maps == NULL)
		return -errno;
	while (fgets(line, sizeof line, maps) != NULL)
		if (strstr(line, pattern) != NULL)
			count++;
	fclose(maps);
	return count;
}

/* The kind of what an fd points to: its link with any "[inode]" or ":[inode]" cut off. */
static void fault_fd_kind(const char *target, char *kind, size_t size)
{
	size_t n = strcspn(target, "[");

	if (strncmp(target, "anon_inode:", 11) == 0)
		n = strlen(target);
	else if (n > 0 && target[n - 1] == ':')
		n--;
	snprintf(kind, size, "%.*s", (int)n, target);
}

void fault_list_fds(FILE *out, const char *prefix)
{
	enum { KINDS_MAX = 32 };
	struct {
		char kind[128];
		int count, first;
	} kinds[KINDS_MAX];
	int nkinds = 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;

	if (dir == NULL)
		return;
	while ((entry = readdir(dir)) != NULL) {
		char path[300], target[PATH_MAX], kind[128];
		ssize_t n;
		int i, fd = atoi(entry->d_name);

		if (entry->d_name[0] == '.' || fd == dirfd(dir))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
		n = readlink(path, target, sizeof target - 1);
		target[n < 0 ? 0 : n] = '\0';
		fault_fd_kind(target, kind, sizeof kind);
		for (i = 0; i < nkinds && strcmp(kinds[i].kind, kind) != 0; i++)
			;
		if (i == nkinds && nkinds < KINDS_MAX) {
			snprintf(kinds[i].kind, sizeof kinds[i].kind, "%s", kind);
			kinds[i].count = 0;
			kinds[i].first = fd;
			nkinds++;
		}
		if (i < nkinds) {
			kinds[i].count++;
			if (fd < kinds[i].first)
				kinds[i].first = fd;
		}
	}
	closedir(dir);
	for (int i = 0; i < nkinds; i++)
		fprintf(out, "%s%d fd(s) -> %s (lowest fd %d)\n", prefix, kinds[i].count,
			kinds[i].kind, kinds[i].first);
}

void fault_list_maps(FILE *out, const char *prefix, const char *pattern)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	char line[4096];
	int count = 0;

	if (maps == NULL)
		return;
	while (fgets(line, sizeof line, maps) != NULL)
		if (strstr(line, pattern) != NULL && count++ < 5)
			fprintf(out, "%s%s", prefix, line);
	fclose(maps);
	if (count > 5)
		fprintf(out, "%s... %d such mappings in all\n", prefix, count);
}

int fault_raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		return -EPERM;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

uint64_t fault_random_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
