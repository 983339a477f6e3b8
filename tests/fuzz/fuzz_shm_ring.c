/* Fuzzes the shared-memory ring against a hostile peer: a libFuzzer entry point, and a deterministic driver for the unit suite. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_segment.h"

#define FUZZ_NAME "fuzz_shm_ring"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * One input is a script. The process plays both ends of one connection in one segment: the
 * acceptor is honest and under test (it reads ring 0 and writes ring 1 through the ring API
 * only); the connector is the hostile peer, which mixes honest use of its own rings with
 * raw stores of any value into any shared word, the header and the data. After every step
 * of the honest side the driver checks that:
 *
 *   - a read returned at most what was asked, and exactly the bytes of ring 0's data area
 *     at the honest side's own read counter, nothing else, and wrote nothing past them;
 *   - a write changed ring 1's data only at the honest side's write counter, with the
 *     caller's bytes, and the honest side touched no other data, nor the header;
 *   - its private counters stay within capacity of each other;
 *   - once a call has returned ECONNRESET, every call does.
 *
 * After a reset the segment is laid out afresh and the script goes on. The segment is one
 * heap block, so AddressSanitizer reports any access past either end of it; the content
 * checks catch an access that strays inside it.
 */

#define FUZZ_MAX_LEN (2 * 8192 + 64)

struct fuzz_stats {
	uint64_t steps;
	uint64_t inputs;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t resets;
	uint64_t eofs;
	uint64_t epipes;
};

static struct fuzz_stats fuzz_stats;

struct fuzz_script {
	const uint8_t *data;
	size_t size;
	size_t at;
};

static uint8_t fuzz_byte(struct fuzz_script *s)
{
	return s->at < s->size ? s->data[s->at++] : 0;
}

static uint64_t fuzz_u64(struct fuzz_script *s)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | fuzz_byte(s);
	return v;
}

static size_t fuzz_len(struct fuzz_script *s, size_t capacity)
{
	size_t v = (size_t)fuzz_byte(s) << 8 | fuzz_byte(s);
	return v % (2 * capacity + 64);
}

struct fuzz_conn {
	unsigned char *base;
	size_t size;
	size_t ring_size;
	struct shm_segment_control *control;
	unsigned char *data0, *data1; /* ring 0: peer -> honest; ring 1: honest -> peer */
	struct shm_ring peer_tx, peer_rx, tx, rx;
	unsigned char *before;        /* a snapshot of the segment, before an honest step */
	bool broken;                  /* the honest side has returned ECONNRESET */
};

static void fuzz_conn_layout(struct fuzz_conn *c)
{
	fuzz_check(shm_segment_init(c->base, c->size, c->ring_size) == 0);
	fuzz_check(shm_segment_attach(c->base, c->size, SHM_SEGMENT_CONNECTOR, &c->peer_tx, &c->peer_rx) == 0);
	fuzz_check(shm_segment_attach(c->base, c->size, SHM_SEGMENT_ACCEPTOR, &c->tx, &c->rx) == 0);
	c->broken = false;
}

/* A counter value for the peer to store: valid, nearly valid, or anything. */
static uint64_t fuzz_counter(struct fuzz_script *s, uint64_t mine, uint64_t capacity)
{
	uint8_t kind = fuzz_byte(s);
	uint64_t small = fuzz_byte(s);

	switch (kind % 7) {
	case 0:
		return fuzz_u64(s);
	case 1:
		return mine + small * capacity / 255;
	case 2:
		return mine - small - 1;
	case 3:
		return UINT64_MAX - small;
	case 4:
		return mine + capacity + 1 + small;
	case 5:
		return mine + capacity;
	default:
		return mine + small;
	}
}

/* Stores a 32-bit word the peer may write: flags, futex words, the reset word. */
static uint32_t fuzz_word(struct fuzz_script *s)
{
	uint8_t kind = fuzz_byte(s);
	return kind < 128 ? 0 : kind < 192 ? 1 : (uint32_t)fuzz_u64(s);
}

/* One step of the hostile peer. */
static void fuzz_peer_step(struct fuzz_conn *c, struct fuzz_script *s, uint8_t op)
{
	struct shm_ring_shared *r0 = &c->control->rings[0], *r1 = &c->control->rings[1];
	static unsigned char buf[FUZZ_MAX_LEN];
	size_t len;

	switch (op) {
	case 0:
		atomic_store(&r0->head, fuzz_counter(s, c->rx.tail, c->ring_size));
		break;
	case 1:
		atomic_store(&r1->tail, fuzz_counter(s, c->tx.head - c->ring_size, c->ring_size));
		break;
	case 2: /* honest use of its own rings: fills ring 0, drains ring 1 */
		len = fuzz_len(s, c->ring_size);
		memset(buf, fuzz_byte(s), len);
		(void)shm_ring_write(&c->peer_tx, buf, len);
		break;
	case 3:
		len = fuzz_len(s, c->ring_size);
		(void)shm_ring_read(&c->peer_rx, buf, len, 0);
		break;
	case 4:
		c->data0[fuzz_len(s, c->ring_size) % c->ring_size] = fuzz_byte(s);
		break;
	case 5:
		atomic_store(&r0->writer_closed, fuzz_word(s));
		break;
	case 6:
		atomic_store(&r1->reader_closed, fuzz_word(s));
		break;
	case 7: {
		struct futex_sem *sems[] = { &r0->readable, &r0->writable, &r1->readable, &r1->writable };
		struct futex_sem *sem = sems[fuzz_byte(s) % 4];
		atomic_store(fuzz_byte(s) % 2 ? &sem->seq : &sem->waiting, fuzz_word(s));
		break;
	}
	case 8:
		/* Rarely: a reset ends the session, and a short script would do nothing else. */
		if (fuzz_byte(s) < 8)
			atomic_store(&c->control->reset, fuzz_word(s) | 1);
		break;
	case 9: /* any byte of the control segment, header included */
		((unsigned char *)c->control)[fuzz_len(s, c->ring_size) % SHM_SEGMENT_CONTROL_SIZE] = fuzz_byte(s);
		break;
	default: {
		/* The peer's own rings take up what it scribbled (their private state must stay
		 * consistent, so through shm_ring_init, which checks it). */
		struct shm_ring fresh;
		if (shm_ring_init(&fresh, r0, c->data0, c->ring_size, SHM_RING_PRODUCER, &c->control->reset, r1) == 0)
			c->peer_tx = fresh;
		if (shm_ring_init(&fresh, r1, c->data1, c->ring_size, SHM_RING_CONSUMER, &c->control->reset, r0) == 0)
			c->peer_rx = fresh;
		break;
	}
	}
}

/* Bytes of the control segment the honest side may write: the reset word and the rings' words. */
static bool fuzz_control_writable(size_t off)
{
	return off >= offsetof(struct shm_segment_control, reset) &&
	       off < offsetof(struct shm_segment_control, rings) + sizeof(((struct shm_segment_control *)0)->rings);
}

/* The checks after an honest step; n is its result, for a read or write of len bytes. */
static void fuzz_check_step(struct fuzz_conn *c, ssize_t n)
{
	size_t cap = c->ring_size;

	fuzz_check(c->rx.head - c->rx.tail <= cap);
	fuzz_check(c->tx.head - c->tx.tail <= cap);
	if (n == -ECONNRESET)
		fuzz_check(c->rx.broken || c->tx.broken);
	/* A failure found by any call, even one that does not report it, ends the session. */
	c->broken = c->rx.broken || c->tx.broken;
	/* Nothing outside the honest side's words changed in the control segment. */
	for (size_t off = 0; off < SHM_SEGMENT_CONTROL_SIZE; off++)
		if (!fuzz_control_writable(off))
			fuzz_check(c->base[off] == c->before[off]);
	/* The honest side never stores the peer's counters. */
	fuzz_check(memcmp(&c->control->rings[0].head, c->before + offsetof(struct shm_segment_control, rings[0].head), 8) == 0);
	fuzz_check(memcmp(&c->control->rings[1].tail, c->before + offsetof(struct shm_segment_control, rings[1].tail), 8) == 0);
	/* Ring 0's data is only ever read. */
	fuzz_check(memcmp(c->data0, c->before + SHM_SEGMENT_CONTROL_SIZE, cap) == 0);
}

static void fuzz_honest_read(struct fuzz_conn *c, struct fuzz_script *s, bool vector)
{
	static unsigned char buf[FUZZ_MAX_LEN + 64];
	size_t len = fuzz_len(s, c->ring_size);
	int flags = fuzz_byte(s) % 4 == 0 ? SHM_RING_PEEK : 0;
	uint64_t tail = c->rx.tail;
	ssize_t n;

	memset(buf, 0xee, len + 64);
	if (vector) {
		size_t a = fuzz_byte(s) * len / 255, b = fuzz_byte(s) * (len - a) / 255;
		struct iovec iov[4] = {
			{ buf, a }, { NULL, 0 }, { buf + a, b }, { buf + a + b, len - a - b },
		};
		n = shm_ring_readv(&c->rx, iov, 4, flags);
	} else {
		n = shm_ring_read(&c->rx, buf, len, flags);
	}
	fuzz_check(n == -EAGAIN || n == -ECONNRESET || (n >= 0 && (size_t)n <= len && (size_t)n <= c->ring_size));
	if (n > 0) {
		/* Exactly the bytes at our own read counter, wrapped inside the data area. */
		for (size_t i = 0; i < (size_t)n; i++)
			fuzz_check(buf[i] == c->data0[(tail + i) & (c->ring_size - 1)]);
		fuzz_check(c->rx.tail == tail + (flags == 0 ? (uint64_t)n : 0));
		fuzz_stats.bytes_read += (uint64_t)n;
	} else {
		fuzz_check(c->rx.tail == tail);
	}
	if (n == 0 && len > 0)
		fuzz_stats.eofs++;
	for (size_t i = n > 0 ? (size_t)n : 0; i < len + 64; i++)
		fuzz_check(buf[i] == 0xee);
	fuzz_check_step(c, n);
}

static void fuzz_honest_write(struct fuzz_conn *c, struct fuzz_script *s, bool vector)
{
	static unsigned char buf[FUZZ_MAX_LEN];
	size_t len = fuzz_len(s, c->ring_size);
	uint64_t head = c->tx.head;
	size_t cap = c->ring_size;
	ssize_t n;

	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(head + i * 7);
	if (vector) {
		size_t a = fuzz_byte(s) * len / 255;
		struct iovec iov[3] = { { buf, a }, { NULL, 0 }, { buf + a, len - a } };
		n = shm_ring_writev(&c->tx, iov, 3);
	} else {
		n = shm_ring_write(&c->tx, buf, len);
	}
	fuzz_check(n == -EAGAIN || n == -ECONNRESET || n == -EPIPE ||
		   (n >= 0 && (size_t)n <= len && (size_t)n <= cap));
	size_t written = n > 0 ? (size_t)n : 0;
	fuzz_check(c->tx.head == head + written);
	fuzz_stats.bytes_written += written;
	fuzz_stats.epipes += n == -EPIPE;
	/* Ring 1's data changed only where we wrote, to what we wrote. */
	const unsigned char *old = c->before + SHM_SEGMENT_CONTROL_SIZE + cap;
	for (size_t i = 0; i < written; i++)
		fuzz_check(c->data1[(head + i) & (cap - 1)] == buf[i]);
	for (uint64_t i = written; i < cap; i++) {
		size_t off = (size_t)((head + i) & (cap - 1));
		fuzz_check(c->data1[off] == old[off]);
	}
	fuzz_check_step(c, n);
}

/* One step of the honest side. */
static void fuzz_honest_step(struct fuzz_conn *c, struct fuzz_script *s, uint8_t op)
{
	ssize_t n = 0;

	memcpy(c->before, c->base, c->size);
	switch (op) {
	case 0:
	case 1:
		fuzz_honest_read(c, s, op == 1);
		return;
	case 2:
	case 3:
		fuzz_honest_write(c, s, op == 3);
		return;
	case 4:
		n = shm_ring_readable(&c->rx);
		fuzz_check(n == -ECONNRESET || (n >= 0 && (size_t)n <= c->ring_size));
		break;
	case 5:
		n = shm_ring_writable(&c->tx);
		fuzz_check(n == -ECONNRESET || (n >= 0 && (size_t)n <= c->ring_size));
		break;
	case 6: {
		int r = fuzz_byte(s) % 2 ? shm_ring_wait_readable(&c->rx, 0, 0) : shm_ring_wait_writable(&c->tx, 0, 0);
		fuzz_check(r == 0 || r == -ETIMEDOUT);
		(void)shm_ring_ready(&c->rx);
		(void)shm_ring_peer_closed(&c->rx);
		(void)shm_ring_peer_closed(&c->tx);
		break;
	}
	case 7:
		(void)shm_ring_notify(fuzz_byte(s) % 2 ? &c->rx : &c->tx);
		break;
	case 8:
		/* Rarely: closing ends half the session. */
		if (fuzz_byte(s) < 4)
			(void)shm_ring_close(fuzz_byte(s) % 2 ? &c->rx : &c->tx);
		break;
	default:
		(void)shm_ring_arm_eventfd(&c->rx);
		shm_ring_disarm_eventfd(&c->rx);
		break;
	}
	fuzz_check_step(c, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_script s = { data, size, 0 };
	struct fuzz_conn c = { .ring_size = fuzz_byte(&s) % 2 ? 8192 : 4096 };

	c.size = (size_t)shm_segment_size(c.ring_size);
	c.base = aligned_alloc(4096, c.size);
	c.before = malloc(c.size);
	if (c.base == NULL || c.before == NULL)
		abort();
	memset(c.base, 0, c.size);
	fuzz_conn_layout(&c);
	c.control = (struct shm_segment_control *)c.base;
	c.data0 = c.base + SHM_SEGMENT_CONTROL_SIZE;
	c.data1 = c.data0 + c.ring_size;
	fuzz_stats.inputs++;

	while (s.at < s.size) {
		uint8_t op = fuzz_byte(&s);
		fuzz_stats.steps++;
		if (op < 128)
			fuzz_peer_step(&c, &s, op % 11);
		else
			fuzz_honest_step(&c, &s, op % 10);
		if (c.broken) {
			/* Sticky: every later call says so, on both directions. */
			char b[1];
			fuzz_check(shm_ring_read(&c.rx, b, 1, 0) == -ECONNRESET);
			fuzz_check(shm_ring_write(&c.tx, b, 1) == -ECONNRESET);
			fuzz_stats.resets++;
			fuzz_conn_layout(&c);
		}
	}
	free(c.base);
	free(c.before);
	return 0;
}

#ifndef VI_FUZZ_LIBFUZZER

/*
 * The standalone driver: `fuzz_shm_ring [-n STEPS] [-s SEED]` feeds random scripts (a
 * seeded xorshift64*, so the same SEED gives the same run) until STEPS steps have run, then
 * checks that both kinds of outcome happened: bytes moved, and corruption was caught.
 */

int main(int argc, char **argv)
{
	uint64_t steps = 200000, seed = 1;
	static uint8_t script[4096];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			steps = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: fuzz_shm_ring [-n STEPS] [-s SEED]\n");
			return 2;
		}
	}
	fuzz_seed(seed);
	while (fuzz_stats.steps < steps) {
		size_t len = 16 + (size_t)(fuzz_random() % (sizeof(script) - 16));
		for (size_t i = 0; i < len; i++)
			script[i] = (uint8_t)(fuzz_random() >> 56);
		LLVMFuzzerTestOneInput(script, len);
	}
	printf("fuzz_shm_ring: %llu steps in %llu scripts: %llu bytes read, %llu written, "
	       "%llu resets caught, %llu EOFs, %llu EPIPEs\n",
	       (unsigned long long)fuzz_stats.steps, (unsigned long long)fuzz_stats.inputs,
	       (unsigned long long)fuzz_stats.bytes_read, (unsigned long long)fuzz_stats.bytes_written,
	       (unsigned long long)fuzz_stats.resets, (unsigned long long)fuzz_stats.eofs,
	       (unsigned long long)fuzz_stats.epipes);
	fuzz_check(fuzz_stats.bytes_read > 0 && fuzz_stats.bytes_written > 0);
	fuzz_check(fuzz_stats.resets > 0);
	return 0;
}

#endif
