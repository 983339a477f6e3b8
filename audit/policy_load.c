/* Reads policy files and prints diagnostics; the names of transports and protocols. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_private.h"

/*
 * Messages for the errors opening and reading a file can give. A fixed table rather than
 * strerror, which must not be called with an unknown code inside the audit module's
 * namespace (glibc bug 32026, not fixed in 2.36; see DESIGN.md).
 */
static const char *policy_errno_text(int error)
{
	switch (error) {
	case ENOENT: return "No such file or directory";
	case EACCES: return "Permission denied";
	case EPERM: return "Operation not permitted";
	case EISDIR: return "Is a directory";
	case ENOTDIR: return "Not a directory";
	case ELOOP: return "Too many levels of symbolic links";
	case ENAMETOOLONG: return "File name too long";
	case EMFILE: return "Too many open files";
	case ENFILE: return "Too many open files in system";
	case ENOMEM: return "Cannot allocate memory";
	case EIO: return "Input/output error";
	case ENXIO: return "No such device or address";
	case ENODEV: return "No such device";
	case EFBIG: return "File too large";
	case EOVERFLOW: return "Value too large for defined data type";
	case EINVAL: return "Invalid argument";
	case EAGAIN: return "Resource temporarily unavailable";
	case ETXTBSY: return "Text file busy";
	case ESTALE: return "Stale file handle";
	default: return NULL;
	}
}

/* A policy whose only diagnostic is "cannot read policy: ...", at line 0. */
static struct vi_policy *policy_unreadable(const char *path, int error, const char *why)
{
	struct policy_owner *owner = policy_owner_new();
	if (owner == NULL)
		return NULL;
	const char *file = policy_strndup(owner, path, strlen(path));
	owner->pub.file = file;
	char message[128];
	if (why == NULL)
		why = policy_errno_text(error);
	if (why != NULL)
		snprintf(message, sizeof(message), "cannot read policy: %s", why);
	else
		snprintf(message, sizeof(message), "cannot read policy: error %d", error);
	policy_add_diagnostic(owner, file, 0, 0, VI_SEVERITY_ERROR,
			      policy_strndup(owner, message, strlen(message)));
	return policy_owner_finish(owner);
}

/*
 * Reads fd to its end into *text, but never more than POLICY_MAX_FILE_SIZE + 1 bytes (one
 * more than allowed, so a file that is too large shows as such). Returns the length read,
 * or -errno.
 */
static ssize_t policy_read_fd(int fd, char **text)
{
	const size_t limit = POLICY_MAX_FILE_SIZE + 1;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	while (len < limit) {
		if (len == cap) {
			size_t want = cap * 2 < limit ? cap * 2 : limit;
			char *grown = realloc(buf, want);
			if (grown == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = grown;
			cap = want;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int error = errno;
			free(buf);
			return -error;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*text = buf;
	return (ssize_t)len;
}

struct vi_policy *vi_policy_load(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return policy_unreadable(path ? path : "", ENOENT, NULL);

	int fd;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return policy_unreadable(path, errno, NULL);

	struct stat st;
	if (fstat(fd, &st) != 0) {
		int error = errno;
		close(fd);
		return policy_unreadable(path, error, NULL);
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return policy_unreadable(path, EISDIR, NULL);
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > POLICY_MAX_FILE_SIZE) {
		close(fd);
		return policy_unreadable(path, EFBIG, "file is larger than 1 MiB");
	}
	char *text = NULL;
	ssize_t len = policy_read_fd(fd, &text);
	close(fd);
	if (len < 0)
		return len == -ENOMEM ? NULL : policy_unreadable(path, (int)-len, NULL);
	if ((size_t)len > POLICY_MAX_FILE_SIZE) {
		free(text);
		return policy_unreadable(path, EFBIG, "file is larger than 1 MiB");
	}
	struct vi_policy *policy = vi_policy_parse(text, (size_t)len, path);
	free(text);
	return policy;
}

/* ----- output ----- */

/* snprintf of the whole diagnostic: the length it needs, or < 0. */
static int policy_format_full(const struct vi_diagnostic *d, char *buf, size_t size)
{
	const char *severity = d->severity == VI_SEVERITY_WARNING ? "warning" : "error";
	const char *file = d->pos.file ? d->pos.file : "<policy>";

	if (d->pos.line == 0)
		return snprintf(buf, size, "%s: %s: %s\n", file, severity, d->message);
	return snprintf(buf, size, "%s:%u:%u: %s: %s\n", file, d->pos.line, d->pos.col, severity,
			d->message);
}

size_t vi_diagnostic_format(const struct vi_diagnostic *d, char *buf, size_t size)
{
	if (size == 0)
		return 0;
	int n = policy_format_full(d, buf, size);
	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	if ((size_t)n < size)
		return (size_t)n;
	/* Cut to fit, but still one line: callers write what this returns as a log line. */
	if (size == 1)
		return 0;
	buf[size - 2] = '\n';
	return size - 1;
}

static void policy_write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

void vi_policy_print_diagnostics(const struct vi_policy *policy, int fd)
{
	char small[1024];

	for (size_t i = 0; i < policy->ndiagnostics; i++) {
		const struct vi_diagnostic *d = &policy->diagnostics[i];
		int need = policy_format_full(d, small, sizeof(small));
		if (need < 0)
			continue;
		if ((size_t)need < sizeof(small)) {
			policy_write_all(fd, small, (size_t)need);
			continue;
		}
		/* A long file name: format it whole rather than cut it. */
		char *big = malloc((size_t)need + 1);
		size_t len = big ? vi_diagnostic_format(d, big, (size_t)need + 1)
				 : vi_diagnostic_format(d, small, sizeof(small));
		policy_write_all(fd, big ? big : small, len);
		free(big);
	}
}

/* ----- names ----- */

const char *vi_transport_name(enum vi_transport t)
{
	switch (t) {
	case VI_TRANSPORT_KERNEL: return "kernel";
	case VI_TRANSPORT_TCP: return "tcp";
	case VI_TRANSPORT_SHM: return "shm";
	case VI_TRANSPORT_VERBS: return "verbs";
	case VI_TRANSPORT_AUTO: return "auto";
	}
	return "?";
}

const char *vi_proto_name(enum vi_proto p)
{
	switch (p) {
	case VI_PROTO_ANY: return "*";
	case VI_PROTO_TCP: return "tcp";
	case VI_PROTO_TCP4: return "tcp4";
	case VI_PROTO_TCP6: return "tcp6";
	case VI_PROTO_UDP: return "udp";
	}
	return "?";
}
