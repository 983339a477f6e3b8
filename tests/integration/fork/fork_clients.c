/* fork_clients: many stream_check clients at once, one process per lane, each lane's connections one after another. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "stream.h"

/* How long one connection may take, header included. */
#define FORK_CLIENTS_TIMEOUT_MS 20000
#define FORK_CLIENTS_LANES_MAX 64

static void fork_clients_usage(FILE *out)
{
	fprintf(out,
		"usage: fork_clients PORT COUNT LANES BYTES SEED\n"
		"  Makes COUNT connections to 127.0.0.1:PORT, LANES of them at a time (one process per\n"
		"  lane, 1..%d; lane L makes connections L, L+LANES, ... one after another). Each is a\n"
		"  stream_check client: it sends the 16-byte header (BYTES, SEED+N for connection N),\n"
		"  then BYTES of its stream while checking BYTES of the server's, byte by byte.\n"
		"  Prints \"client N: <verdict>\" for each and \"clients: COUNT connections, K failed\".\n"
		"  Exit 0 when every connection was right, 1 when one was not, 2 on bad usage.\n",
		FORK_CLIENTS_LANES_MAX);
}

/* One connection: the stream_check client's side. Returns 0 when it was right. */
static int fork_clients_one(unsigned port, uint64_t number, uint64_t bytes, uint64_t seed)
{
	uint8_t header[STREAM_HEADER_SIZE];
	struct stream_result result;
	char prefix[64];
	int fd, r;

	snprintf(prefix, sizeof prefix, "client %llu: ", (unsigned long long)number);
	fd = fault_connect_loopback(port);
	if (fd < 0) {
		printf("%sconnect: %s\n", prefix, fault_errno_name(-fd));
		return -1;
	}
	stream_header_encode(header, bytes, seed);
	r = fault_write_full(fd, header, sizeof header, FORK_CLIENTS_TIMEOUT_MS);
	if (r < 0) {
		printf("%sheader: %s\n", prefix, fault_errno_name(-r));
		close(fd);
		return -1;
	}
	r = stream_exchange(fd, bytes, seed, stream_server_seed(seed), ~seed,
			    FORK_CLIENTS_TIMEOUT_MS, &result);
	stream_result_print(stdout, prefix, &result);
	close(fd);
	return r;
}

/* A lane's process: its connections one after another; exits with the number that failed. */
static void fork_clients_lane(unsigned port, uint64_t lane, uint64_t lanes, uint64_t count,
			      uint64_t bytes, uint64_t seed)
{
	int failed = 0;

	for (uint64_t n = lane + 1; n <= count; n += lanes)
		if (fork_clients_one(port, n, bytes, seed + n) < 0)
			failed++;
	fflush(stdout);
	_exit(failed > 100 ? 100 : failed);
}

int main(int argc, char **argv)
{
	uint64_t port, count, lanes, bytes, seed, failed = 0;
	pid_t pids[FORK_CLIENTS_LANES_MAX];

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		fork_clients_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 6 || fault_parse_u64(argv[1], 1, 65535, &port) < 0 ||
	    fault_parse_u64(argv[2], 1, 100000, &count) < 0 ||
	    fault_parse_u64(argv[3], 1, FORK_CLIENTS_LANES_MAX, &lanes) < 0 ||
	    fault_parse_u64(argv[4], 0, STREAM_BYTES_MAX, &bytes) < 0 ||
	    fault_parse_u64(argv[5], 0, UINT64_MAX, &seed) < 0) {
		fork_clients_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (lanes > count)
		lanes = count;
	for (uint64_t lane = 0; lane < lanes; lane++) {
		fflush(NULL);
		pids[lane] = fork();
		if (pids[lane] < 0) {
			fprintf(stderr, "fork_clients: fork: %s\n", strerror(errno));
			return FAULT_EXIT_FAILED;
		}
		if (pids[lane] == 0)
			fork_clients_lane((unsigned)port, lane, lanes, count, bytes, seed);
	}
	for (uint64_t lane = 0; lane < lanes; lane++) {
		int status;

		while (waitpid(pids[lane], &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status)) {
			failed += (uint64_t)WEXITSTATUS(status);
		} else {
			printf("lane %llu: killed by signal %d\n", (unsigned long long)lane,
			       WTERMSIG(status));
			failed++;
		}
	}
	printf("clients: %llu connections, %llu failed\n", (unsigned long long)count,
	       (unsigned long long)failed);
	return failed == 0 ? FAULT_EXIT_OK : FAULT_EXIT_FAILED;
}
