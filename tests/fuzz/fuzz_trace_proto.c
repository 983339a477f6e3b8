/* The trace prototype-file parser under mutated input: never a crash, a leak or an out-of-bounds access. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_proto.h"

#define FUZZ_NAME "fuzz_trace_proto"
#include "fuzz_util.h"

/* Counts the diagnostics and checks their form: "FILE:LINE:COL: error|warning: ...". */
static void fuzz_report(void *context, const char *line)
{
	size_t *count = context;
	if (strncmp(line, "fuzz.proto:", 11) != 0 ||
	    (strstr(line, ": error: ") == NULL && strstr(line, ": warning: ") == NULL)) {
		fprintf(stderr, "fuzz_trace_proto: malformed diagnostic: %s\n", line);
		abort();
	}
	(*count)++;
}

/* One input: parse it as a file, and each of its lines as a single declaration. */
static void fuzz_one(const char *data, size_t len)
{
	struct trace_proto *protos = NULL;
	size_t count = 0, reports = 0;
	int errors = trace_proto_parse_file(data, len, "fuzz.proto", &protos, &count, fuzz_report,
					    &reports);
	if (errors > 0 && (protos != NULL || count != 0)) {
		fprintf(stderr, "fuzz_trace_proto: a file with errors yielded prototypes\n");
		abort();
	}
	if (errors > 0 && reports < (size_t)errors) {
		fprintf(stderr, "fuzz_trace_proto: %d errors but %zu reports\n", errors, reports);
		abort();
	}
	free(protos);
	for (size_t start = 0; start < len;) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - data) : len;
		struct trace_proto one;
		struct trace_proto_error err;
		if (trace_proto_parse(data + start, end - start, &one, &err) < 0 &&
		    (err.col == 0 || err.message[0] == '\0')) {
			fprintf(stderr, "fuzz_trace_proto: an error without column or message\n");
			abort();
		}
		start = end + 1;
	}
}

#ifdef VI_FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one((const char *)data, size);
	return 0;
}
#else
static const char *const fuzz_seeds[] = {
	"int SSL_read(void *ssl, buf(ret) void *buf, int num);\n"
	"int SSL_write(void *ssl, buf(num) const void *buf, int num);\n",
	"ssize_t send(int fd, const void *buf, size_t len, flags(msg) int flags);\n"
	"int connect(int fd, sockaddr(len) const struct sockaddr *addr, socklen_t len);\n"
	"# comment\n// another\n\n",
	"fd int accept4(int fd, struct sockaddr *addr, socklen_t *len, flags(sock) int flags)\n"
	"ssize_t readv(int fd, iov(iovcnt) const struct iovec *iov, int iovcnt);\n"
	"ssize_t recvmsg(int fd, msg struct msghdr *msg, int flags);\n"
	"const char *name(str const char *s, hex unsigned long x);\n",
};

int main(int argc, char **argv)
{
	long iterations = 20000;
	uint64_t seed = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-n") == 0)
			iterations = atol(argv[i + 1]);
		else if (strcmp(argv[i], "-s") == 0)
			seed = strtoull(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "usage: fuzz_trace_proto [-n ITERATIONS] [-s SEED]\n");
			return 2;
		}
	}
	fuzz_seed(seed);
	static const char alphabet[] = "()*,;#/ \t\n\r\"'abcfhimnrstuvx0123456789_[]{}<>.|&$\\";
	char buf[4096];
	for (long i = 0; i < iterations; i++) {
		const char *text = fuzz_seeds[fuzz_below(sizeof(fuzz_seeds) / sizeof(*fuzz_seeds))];
		size_t len = strlen(text);
		memcpy(buf, text, len);
		int edits = 1 + (int)(fuzz_random() % 8);
		for (int e = 0; e < edits; e++) {
			size_t at = len ? (size_t)(fuzz_random() % len) : 0;
			switch (fuzz_random() % 5) {
			case 0: /* replace a byte with anything */
				if (len)
					buf[at] = (char)(fuzz_random() & 0xff);
				break;
			case 1: /* replace a byte with one of the grammar's */
				if (len)
					buf[at] = alphabet[fuzz_random() % (sizeof(alphabet) - 1)];
				break;
			case 2: /* delete a run */
				if (len) {
					size_t n = 1 + (size_t)(fuzz_random() % 16);
					if (n > len - at)
						n = len - at;
					memmove(buf + at, buf + at + n, len - at - n);
					len -= n;
				}
				break;
			case 3: /* duplicate a run */
				if (len && len < sizeof(buf) / 2) {
					size_t n = 1 + (size_t)(fuzz_random() % 64);
					if (n > len - at)
						n = len - at;
					memmove(buf + at + n, buf + at, len - at);
					len += n;
				}
				break;
			default: /* a long word */
				if (len + 300 < sizeof(buf)) {
					memmove(buf + at + 300, buf + at, len - at);
					memset(buf + at, 'a' + (int)(fuzz_random() % 26), 300);
					len += 300;
				}
				break;
			}
		}
		fuzz_one(buf, len);
	}
	printf("fuzz_trace_proto: %ld inputs, no failure\n", iterations);
	return 0;
}
#endif
