/* shm_scribble: a client that, once its connection runs over shared memory, writes random bytes over the ring counters of the control page while the server reads. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_util.h"
#include "shm_segment.h"
#include "stream.h"

#define SCRIBBLE_TIMEOUT_MS 10000
#define SCRIBBLE_COUNTERS_MS 300
#define SCRIBBLE_PAGE_MS 100

static void scribble_usage(FILE *out)
{
	fprintf(out,
		"usage: shm_scribble PORT BYTES SEED\n"
		"  Connect to the stream_check server at 127.0.0.1:PORT, send the header of a\n"
		"  BYTES-long stream of SEED and its first half, then find this connection's shared\n"
		"  memory (the \"/memfd:viaudit\" mapping of /proc/self/maps holding a segment\n"
		"  header) and, for %d ms, write random values over both rings' head and tail\n"
		"  counters and futex words, then for %d ms random bytes over the whole control page\n"
		"  past its header, waking the server after each (futex wakes, and a write to each\n"
		"  eventfd this process holds). Then close. Exit 0 when it scribbled, 77 when the connection\n"
		"  has no such mapping (it is not on shm), 1 on a failure.\n",
		SCRIBBLE_COUNTERS_MS, SCRIBBLE_PAGE_MS);
}

/* The control segment of this process's one shm connection, or NULL. */
static struct shm_segment_control *scribble_find_segment(void)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	struct shm_segment_control *found = NULL;
	char line[4096];

	if (maps == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof line, maps) != NULL) {
		unsigned long start, end, offset;
		char perms[8];
		struct shm_segment_control *c;

		if (strstr(line, "/memfd:viaudit") == NULL ||
		    sscanf(line, "%lx-%lx %7s %lx", &start, &end, perms, &offset) != 4)
			continue;
		if (offset != 0 || perms[0] != 'r' || perms[1] != 'w' ||
		    end - start < SHM_SEGMENT_CONTROL_SIZE)
			continue;
		c = (struct shm_segment_control *)start;
		if (c->header.magic == SHM_SEGMENT_MAGIC)
			found = c;
	}
	fclose(maps);
	return found;
}

/* Random values over what the two sides count with: heads, tails, futex words, close flags. */
static void scribble_counters(struct shm_segment_control *c, uint64_t *state)
{
	for (int i = 0; i < 2; i++) {
		struct shm_ring_shared *r = &c->rings[i];

		atomic_store_explicit(&r->head, fault_random_next(state), memory_order_relaxed);
		atomic_store_explicit(&r->tail, fault_random_next(state), memory_order_relaxed);
		atomic_store_explicit(&r->readable.seq, (uint32_t)fault_random_next(state),
				      memory_order_relaxed);
		atomic_store_explicit(&r->readable.waiting, (uint32_t)fault_random_next(state),
				      memory_order_relaxed);
		atomic_store_explicit(&r->writable.seq, (uint32_t)fault_random_next(state),
				      memory_order_relaxed);
		atomic_store_explicit(&r->writable.waiting, (uint32_t)fault_random_next(state),
				      memory_order_relaxed);
	}
}

/* Random bytes over the control page after the header (which was copied once at attach). */
static void scribble_page(struct shm_segment_control *c, uint64_t *state)
{
	volatile unsigned char *p = (volatile unsigned char *)c;

	for (size_t i = offsetof(struct shm_segment_control, reset); i < SHM_SEGMENT_CONTROL_SIZE;
	     i += 8) {
		uint64_t v = fault_random_next(state);

		for (int b = 0; b < 8; b++)
			p[i + (size_t)b] = (unsigned char)(v >> (8 * b));
	}
}

/*
 * Wakes whoever sleeps on the connection, so the server looks at the garbage now rather than
 * when we close: a FUTEX_WAKE on every futex word, and a write to every eventfd we hold (the
 * module's wake eventfds are among them). Returns how many eventfds were written.
 */
static int scribble_wake_server(struct shm_segment_control *c)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	uint64_t one = 1;
	int written = 0;

	for (int i = 0; i < 2; i++) {
		syscall(SYS_futex, &c->rings[i].readable.seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		syscall(SYS_futex, &c->rings[i].writable.seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
	if (dir == NULL)
		return 0;
	while ((entry = readdir(dir)) != NULL) {
		char path[300], target[64];
		ssize_t n;

		snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
		n = readlink(path, target, sizeof target - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[eventfd]") == 0 &&
		    write(atoi(entry->d_name), &one, sizeof one) == sizeof one)
			written++;
	}
	closedir(dir);
	return written;
}

int main(int argc, char **argv)
{
	uint8_t header[STREAM_HEADER_SIZE];
	static uint8_t half[1 << 20];
	struct shm_segment_control *control;
	uint64_t port, bytes, seed, state, first, counters = 0, pages = 0;
	double start;
	char byte;
	ssize_t n;
	int fd, r, wakes;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		scribble_usage(stdout);
		return FAULT_EXIT_OK;
	}
	if (argc != 4 || fault_parse_u64(argv[1], 1, 65535, &port) < 0 ||
	    fault_parse_u64(argv[2], 2, STREAM_BYTES_MAX, &bytes) < 0 ||
	    fault_parse_u64(argv[3], 0, UINT64_MAX, &seed) < 0) {
		scribble_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	fd = fault_connect_loopback((unsigned)port);
	if (fd < 0) {
		printf("scribble: connect: %s\n", fault_errno_name(-fd));
		return FAULT_EXIT_FAILED;
	}
	first = bytes / 2 < sizeof half ? bytes / 2 : sizeof half;
	stream_header_encode(header, bytes, seed);
	stream_fill(seed, 0, half, (size_t)first);
	r = fault_write_full(fd, header, sizeof header, SCRIBBLE_TIMEOUT_MS);
	if (r == 0)
		r = fault_write_full(fd, half, (size_t)first, SCRIBBLE_TIMEOUT_MS);
	if (r < 0) {
		printf("scribble: sending the first %llu bytes: %s\n", (unsigned long long)first,
		       fault_errno_name(-r));
		return FAULT_EXIT_FAILED;
	}
	printf("scribble: sent the header and %llu of %llu bytes\n", (unsigned long long)first,
	       (unsigned long long)bytes);

	control = scribble_find_segment();
	if (control == NULL) {
		printf("scribble: no /memfd:viaudit mapping with a segment header: the connection "
		       "is not on shm\n");
		fault_list_maps(stdout, "scribble:   ", "/memfd:");
		close(fd);
		return FAULT_EXIT_SKIP;
	}
	printf("scribble: control page at %p, ring size %llu\n", (void *)control,
	       (unsigned long long)control->header.ring_size);

	/* Let the server read what was sent: then it waits for the rest, writing its own. */
	fault_sleep_ms(200);
	state = seed ^ 0x5c81bb1e;
	start = fault_now_ms();
	while (fault_now_ms() - start < SCRIBBLE_COUNTERS_MS) {
		scribble_counters(control, &state);
		counters++;
	}
	wakes = scribble_wake_server(control);
	fault_sleep_ms(100);
	/* Left alone by the counters phase: nonzero now means a side saw the garbage and reset. */
	printf("scribble: reset word after the counters phase: %u\n",
	       (unsigned)atomic_load_explicit(&control->reset, memory_order_acquire));
	start = fault_now_ms();
	while (fault_now_ms() - start < SCRIBBLE_PAGE_MS) {
		scribble_page(control, &state);
		pages++;
	}
	wakes += scribble_wake_server(control);
	fault_sleep_ms(100);
	printf("scribble: wrote the counters %llu times and the page %llu times, woke the "
	       "server through futexes and %d eventfd writes\n",
	       (unsigned long long)counters, (unsigned long long)pages, wakes);

	/* What our own side now makes of the connection: anything but a crash or a hang. */
	n = recv(fd, &byte, 1, MSG_DONTWAIT);
	printf("scribble: our own recv after scribbling: %zd (%s)\n", n,
	       n < 0 ? fault_errno_name(errno) : n == 0 ? "EOF" : "a byte");
	close(fd);
	return FAULT_EXIT_OK;
}
