/* Subtests of volume and concurrency: a reader and a writer thread per socket, sendfile, 64 MiB each way. */
#include "sem.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

void sem_test_threads_one_socket(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	const size_t len = (size_t)1 << 20;
	sem_pair_open(ctx, &p);
	/* On each end one thread writes while another reads the same fd. */
	struct sem_stream streams[4] = {
		{ .fd = p.client, .seed = 61, .len = len, .max_chunk = 16384 },
		{ .fd = p.server, .seed = 61, .len = len, .max_chunk = 16384 },
		{ .fd = p.server, .seed = 62, .len = len, .max_chunk = 16384 },
		{ .fd = p.client, .seed = 62, .len = len, .max_chunk = 16384 },
	};
	sem_stream_send_start(&streams[0]);
	sem_stream_recv_start(&streams[1]);
	sem_stream_send_start(&streams[2]);
	sem_stream_recv_start(&streams[3]);
	for (int i = 0; i < 4; i++)
		sem_stream_join(&streams[i]);
}

struct sem_collect {
	int fd;
	uint8_t *buf;
	size_t len;
};

static void *sem_collect_main(void *arg)
{
	struct sem_collect *c = arg;
	sem_recv_exact(c->fd, c->buf, c->len);
	return NULL;
}

void sem_test_sendfile(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	const size_t size = ((size_t)3 << 20) + 123;
	const off_t start = 1000;
	sem_pair_open(ctx, &p);

	/* A temporary file with a known pattern. */
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/sem_sendfile.XXXXXX", dir && *dir ? dir : "/tmp");
	int file = (int)SEM_OK(mkstemp(path));
	SEM_OK(unlink(path));
	uint8_t *content = malloc(size);
	SEM_CHECK(content != NULL, "out of memory");
	sem_pattern_fill(content, size, 71, 0);
	SEM_EXPECT(write(file, content, size), size);
	SEM_EXPECT(lseek(file, 0, SEEK_SET), 0);

	/* The peer collects everything: the file from offset 1000, then its first 1000 bytes. */
	struct sem_collect collect = { .fd = p.server, .len = size, .buf = malloc(size) };
	SEM_CHECK(collect.buf != NULL, "out of memory");
	pthread_t reader = sem_thread_start(sem_collect_main, &collect);

	/* With an offset pointer: it advances, the file position does not move. */
	off_t offset = start;
	while ((size_t)offset < size) {
		ssize_t n = sendfile(p.client, file, &offset, size - (size_t)offset);
		SEM_CHECK(n > 0, "sendfile at offset %lld returned %zd (%s)", (long long)offset, n,
			  n < 0 ? sem_errno_name(errno) : "-");
	}
	SEM_CHECK((size_t)offset == size, "sendfile left the offset at %lld", (long long)offset);
	SEM_EXPECT(lseek(file, 0, SEEK_CUR), 0);
	/* Without one: the file position advances. */
	size_t left = (size_t)start;
	while (left > 0) {
		ssize_t n = sendfile(p.client, file, NULL, left);
		SEM_CHECK(n > 0, "sendfile from the file position returned %zd (%s)", n,
			  n < 0 ? sem_errno_name(errno) : "-");
		left -= (size_t)n;
	}
	SEM_EXPECT(lseek(file, 0, SEEK_CUR), start);

	sem_thread_join(reader);
	SEM_CHECK(memcmp(collect.buf, content + start, size - (size_t)start) == 0,
		  "the bytes sendfile sent from offset %lld differ", (long long)start);
	SEM_CHECK(memcmp(collect.buf + (size - (size_t)start), content, (size_t)start) == 0,
		  "the bytes sendfile sent from the file position differ");
	/* Nothing more arrived than was sent. */
	char extra;
	SEM_EXPECT_ERRNO(recv(p.server, &extra, 1, MSG_DONTWAIT), EAGAIN);
	free(collect.buf);
	free(content);
	close(file);
}

void sem_test_large_transfer(const struct sem_ctx *ctx)
{
	struct sem_pair p;
	const size_t len = (size_t)64 << 20;
	sem_pair_open(ctx, &p);
	/* Both directions at once, writes and reads of 1 byte to 256 KiB, so every boundary of
	 * a ring is crossed with every alignment. */
	struct sem_stream streams[4] = {
		{ .fd = p.client, .seed = 81, .len = len, .max_chunk = 256 << 10 },
		{ .fd = p.server, .seed = 81, .len = len, .max_chunk = 256 << 10 },
		{ .fd = p.server, .seed = 82, .len = len, .max_chunk = 256 << 10 },
		{ .fd = p.client, .seed = 82, .len = len, .max_chunk = 256 << 10 },
	};
	int64_t begin = sem_now_ms();
	sem_stream_send_start(&streams[0]);
	sem_stream_recv_start(&streams[1]);
	sem_stream_send_start(&streams[2]);
	sem_stream_recv_start(&streams[3]);
	for (int i = 0; i < 4; i++)
		sem_stream_join(&streams[i]);
	int64_t took = sem_now_ms() - begin;
	sem_note("64 MiB each way in %lld ms (pattern generation and checking included)",
		 (long long)took);
	/* Both ends then close cleanly: EOF each way, nothing left over. */
	SEM_EXPECT(shutdown(p.client, SHUT_WR), 0);
	SEM_EXPECT(shutdown(p.server, SHUT_WR), 0);
	char extra;
	SEM_EXPECT(recv(p.server, &extra, 1, 0), 0);
	SEM_EXPECT(recv(p.client, &extra, 1, 0), 0);
}
