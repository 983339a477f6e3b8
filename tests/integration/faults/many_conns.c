/* many_conns: opens N connections at once to an echo server, makes one round trip on each, closes them all, and checks that no fd or memfd mapping is left behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_util.h"

#define MANY_CONNS_NOFILE 4096
#define MANY_CONNS_MESSAGE 64
#define MANY_CONNS_TIMEOUT_MS 10000
#define MANY_CONNS_SETTLE_MS 2000

static void many_conns_usage(FILE *out)
{
	fprintf(out,
		"usage: many_conns PORT N\n"
		"  Raise RLIMIT_NOFILE to %d, open N connections to the echo server on\n"
		"  127.0.0.1:PORT, keep them all open, send a %d-byte message on each and read each\n"
		"  echo back, close them all, then compare the open fds and the \"/memfd:\" mappings\n"
		"  of /proc/self/maps with their counts before the first connect. Prints\n"
		"  \"client: clean ...\" or \"client: LEAK ...\"; exit 0 when clean, else 1.\n",
		MANY_CONNS_NOFILE, MANY_CONNS_MESSAGE);
}

static void many_conns_message(char buf[MANY_CONNS_MESSAGE], unsigned long i)
{
	memset(buf, 0, MANY_CONNS_MESSAGE);
	snprintf(buf, MANY_CONNS_MESSAGE, "connection %lu of many_conns, pid %ld", i,
		 (long)getpid());
}

int main(int argc, char **argv)
{
	char out[MANY_CONNS_MESSAGE], in[MANY_CONNS_MESSAGE];
	int base_fds, base_memfds, fds, memfds, r;
	uint64_t port, n;
	double start;
	int *conns;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		many_conns_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 3 || fault_parse_u64(argv[1], 1, 65535, &port) < 0 ||
	    fault_parse_u64(argv[2], 1, MANY_CONNS_NOFILE / 2, &n) < 0) {
		many_conns_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	r = fault_raise_nofile(MANY_CONNS_NOFILE);
	if (r < 0) {
		printf("client: cannot raise RLIMIT_NOFILE to %d: %s\n", MANY_CONNS_NOFILE,
		       strerror(-r));
		return FAULT_EXIT_SKIP;
	}
	conns = calloc(n, sizeof *conns);
	if (conns == NULL)
		return FAULT_EXIT_FAILED;
	base_fds = fault_count_fds();
	base_memfds = fault_count_maps("/memfd:");
	printf("client: baseline fds %d, memfd mappings %d\n", base_fds, base_memfds);

	start = fault_now_ms();
	for (uint64_t i = 0; i < n; i++) {
		conns[i] = fault_connect_loopback((unsigned)port);
		if (conns[i] < 0) {
			printf("client: connect %llu of %llu: %s\n", (unsigned long long)i + 1,
			       (unsigned long long)n, fault_errno_name(-conns[i]));
			return FAULT_EXIT_FAILED;
		}
	}
	printf("client: %llu connections opened in %.0f ms\n", (unsigned long long)n,
	       fault_now_ms() - start);

	/* Every message goes out before any echo is read, so all N are in flight together. */
	for (uint64_t i = 0; i < n; i++) {
		many_conns_message(out, i);
		r = fault_write_full(conns[i], out, sizeof out, MANY_CONNS_TIMEOUT_MS);
		if (r < 0) {
			printf("client: write on connection %llu: %s\n", (unsigned long long)i,
			       fault_errno_name(-r));
			return FAULT_EXIT_FAILED;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		many_conns_message(out, i);
		r = fault_read_full(conns[i], in, sizeof in, MANY_CONNS_TIMEOUT_MS);
		if (r < 0 || memcmp(in, out, sizeof in) != 0) {
			printf("client: echo on connection %llu: %s\n", (unsigned long long)i,
			       r < 0 ? fault_errno_name(-r) : "wrong bytes");
			return FAULT_EXIT_FAILED;
		}
	}
	printf("client: %llu round trips done\n", (unsigned long long)n);
	printf("client: %llu connections open after a round trip each: memfd mappings %d, fds %d\n",
	       (unsigned long long)n, fault_count_maps("/memfd:"), fault_count_fds());
	for (uint64_t i = 0; i < n; i++)
		if (close(conns[i]) < 0)
			printf("client: close(%d): %s\n", conns[i], fault_errno_name(errno));
	free(conns);

	start = fault_now_ms();
	for (;;) {
		fds = fault_count_fds();
		memfds = fault_count_maps("/memfd:");
		if ((fds == base_fds && memfds == base_memfds) ||
		    fault_now_ms() - start > MANY_CONNS_SETTLE_MS)
			break;
		fault_sleep_ms(10);
	}
	if (fds == base_fds && memfds == base_memfds) {
		printf("client: clean after closing %llu connections: fds %d (baseline %d), memfd "
		       "mappings %d (baseline %d), settled in %.0f ms\n", (unsigned long long)n, fds,
		       base_fds, memfds, base_memfds, fault_now_ms() - start);
		return FAULT_EXIT_OK;
	}
	printf("client: LEAK after closing %llu connections: fds %d (baseline %d), memfd "
	       "mappings %d (baseline %d)\n", (unsigned long long)n, fds, base_fds, memfds,
	       base_memfds);
	fault_list_fds(stdout, "client:   ");
	fault_list_maps(stdout, "client:   ", "/memfd:");
	return FAULT_EXIT_FAILED;
}
