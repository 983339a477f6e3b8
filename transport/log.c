/* The diagnostic channel: a private descriptor that survives the program closing fd 2. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct vi_log vi_log_state = { .fd = -1 };

/* A high descriptor number keeps the log out of the way of programs that expect small ones. */
static int log_move_high(int fd)
{
	struct rlimit rl;
	int floor = 255;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur <= (rlim_t)floor)
		floor = (int)rl.rlim_cur / 2;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0)
		high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return high;
}

int vi_log_open(const char *file, unsigned mask)
{
	int err = 0;
	vi_log_state.mask = mask;
	if (file != NULL && file[0] != '\0') {
		int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			vi_log_state.fd = log_move_high(fd);
			close(fd);
			if (vi_log_state.fd >= 0)
				return 0;
		}
		err = -errno;
	}
	vi_log_state.fd = log_move_high(STDERR_FILENO);
	return err;
}

unsigned vi_log_parse_mask(const char *text)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "routes", VI_LOG_ROUTES },
		{ "conns", VI_LOG_CONNS },
		{ "calls", VI_LOG_CALLS },
		{ "debug", VI_LOG_DEBUG },
		{ "trace", VI_LOG_TRACE },
		{ "all", VI_LOG_ROUTES | VI_LOG_CONNS | VI_LOG_CALLS | VI_LOG_DEBUG | VI_LOG_TRACE },
	};
	unsigned mask = 0;
	while (text != NULL && *text != '\0') {
		size_t n = strcspn(text, ", ");
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n && strncmp(text, words[i].word, n) == 0)
				mask |= words[i].bit;
		text += n;
		text += strspn(text, ", ");
	}
	return mask;
}

void vi_log_write(const char *text, size_t len)
{
	int saved = errno;
	int fd = vi_log_state.fd >= 0 ? vi_log_state.fd : STDERR_FILENO;
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		text += n;
		len -= (size_t)n;
	}
	errno = saved;
}

void vi_log_line(const char *fmt, ...)
{
	char buf[1024];
	size_t prefix = sizeof("viaudit: ") - 1;
	memcpy(buf, "viaudit: ", prefix);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + prefix, sizeof(buf) - prefix - 1, fmt, ap);
	va_end(ap);
	size_t len = prefix + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	vi_log_write(buf, len);
}
