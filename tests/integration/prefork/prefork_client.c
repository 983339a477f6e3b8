/* prefork_client: many concurrent stream_check clients, so that connections reach a pre-forked server's workers together. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "stream.h"

#define PREFORK_CLIENT_PARALLEL_MAX 64
/* How long one connection may take, header included (as stream_check). */
#define PREFORK_CLIENT_TIMEOUT_MS 20000

static void prefork_client_usage(FILE *out)
{
	fprintf(out,
		"usage: prefork_client PORT CONNS PARALLEL MAX_BYTES SEED\n"
		"  Fork PARALLEL (1..%d) processes that together make CONNS stream_check\n"
		"  connections to 127.0.0.1:PORT, process P making connections P, P+PARALLEL, ...\n"
		"  one after another. Connection I sends a stream of 0..MAX_BYTES bytes, both the\n"
		"  length and the stream's seed drawn from SEED and I, and checks the server's.\n"
		"  Prints \"client conn I: <verdict>\" per connection and \"clients: N connections,\n"
		"  F failed\"; exit 0 when every connection was right, else 1.\n",
		PREFORK_CLIENT_PARALLEL_MAX);
}

/* One connection of the run. Returns 0 when both streams arrived intact. */
static int prefork_client_one(unsigned port, uint64_t index, uint64_t max_bytes, uint64_t seed)
{
	uint8_t header[STREAM_HEADER_SIZE];
	struct stream_result result;
	uint64_t state = seed ^ (index * 0x9e3779b97f4a7c15ull);
	uint64_t stream_seed = fault_random_next(&state);
	uint64_t bytes = fault_random_next(&state) % (max_bytes + 1);
	char prefix[64];
	int fd, r;

	snprintf(prefix, sizeof prefix, "client conn %llu: ", (unsigned long long)index);
	fd = fault_connect_loopback(port);
	if (fd < 0) {
		printf("%sconnect: %s\n", prefix, fault_errno_name(-fd));
		return -1;
	}
	stream_header_encode(header, bytes, stream_seed);
	r = fault_write_full(fd, header, sizeof header, PREFORK_CLIENT_TIMEOUT_MS);
	if (r < 0) {
		printf("%sheader: %s\n", prefix, fault_errno_name(-r));
		close(fd);
		return -1;
	}
	r = stream_exchange(fd, bytes, stream_seed, stream_server_seed(stream_seed), ~stream_seed,
			    PREFORK_CLIENT_TIMEOUT_MS, &result);
	stream_result_print(stdout, prefix, &result);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	pid_t pids[PREFORK_CLIENT_PARALLEL_MAX];
	uint64_t port, conns, parallel, max_bytes, seed;
	unsigned long failed = 0;
	bool broken = false;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		prefork_client_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 6 || fault_parse_u64(argv[1], 1, 65535, &port) < 0 ||
	    fault_parse_u64(argv[2], 1, 1000000, &conns) < 0 ||
	    fault_parse_u64(argv[3], 1, PREFORK_CLIENT_PARALLEL_MAX, &parallel) < 0 ||
	    fault_parse_u64(argv[4], 0, STREAM_BYTES_MAX, &max_bytes) < 0 ||
	    fault_parse_u64(argv[5], 0, UINT64_MAX, &seed) < 0) {
		prefork_client_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	for (uint64_t p = 0; p < parallel; p++) {
		fflush(NULL);
		pids[p] = fork();
		if (pids[p] < 0) {
			fprintf(stderr, "prefork_client: fork: %s\n", strerror(errno));
			for (uint64_t k = 0; k < p; k++)
				kill(pids[k], SIGKILL);
			return FAULT_EXIT_FAILED;
		}
		if (pids[p] == 0) {
			unsigned long bad = 0;

			for (uint64_t i = p; i < conns; i += parallel)
				bad += prefork_client_one((unsigned)port, i, max_bytes, seed) < 0;
			/* The exit status carries the count of wrong connections (capped). */
			_exit(bad > 100 ? 100 : (int)bad);
		}
	}
	for (uint64_t p = 0; p < parallel; p++) {
		int status;

		if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status)) {
			fprintf(stderr, "prefork_client: process %llu did not exit normally\n",
				(unsigned long long)p);
			broken = true;
			continue;
		}
		failed += (unsigned long)WEXITSTATUS(status);
	}
	printf("clients: %llu connections, %lu failed\n", (unsigned long long)conns, failed);
	return failed == 0 && !broken ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}
