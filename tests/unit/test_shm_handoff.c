/* Unit tests of the fork handoff's peer side: the session page's state machine and the peer's answer (pause, copy, attach, report), with both ends of one connection in this process. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "door.h"
#include "memfd_seal.h"
#include "shm_handoff.h"
#include "shm_private.h"
#include "shm_segment.h"
#include "transport.h"

#define RING ((size_t)16 << 10)

/* A connection whose connector (a) and acceptor (b) are both here; b answers a's handoffs. */
struct pair {
	struct vi_conn a, b;
	size_t size;
};

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct shm_options options = { .ring_size = RING, .spin_us = 0 };
	int chan[2], wake_a, wake_b;
	if (p == NULL)
		return -1;
	p->size = (size_t)shm_segment_size(RING);
	int memfd = memfd_seal_create("test", p->size);
	if (memfd < 0)
		return -1;
	vi_shm_endpoint_init(&p->a, &options);
	vi_shm_endpoint_init(&p->b, &options);
	if (vi_shm_endpoint_map(&p->a, memfd, p->size, SHM_SEGMENT_CONNECTOR, true, RING) < 0 ||
	    vi_shm_endpoint_map(&p->b, memfd, p->size, SHM_SEGMENT_ACCEPTOR, false, 0) < 0)
		return -1;
	close(memfd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, chan) < 0)
		return -1;
	wake_a = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	wake_b = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct shm_endpoint *a = &p->a.shm, *b = &p->b.shm;
	a->state = b->state = SHM_ACTIVE;
	a->chan_fd = chan[0];
	b->chan_fd = chan[1];
	/* Each end owns its own eventfd and a copy of the other's (both closed at destroy). */
	a->wake_fd = wake_a;
	b->wake_fd = wake_b;
	a->peer_wake_fd = dup(wake_b);
	b->peer_wake_fd = dup(wake_a);
	a->tx.wake_fd = a->rx.wake_fd = a->peer_wake_fd;
	b->tx.wake_fd = b->rx.wake_fd = b->peer_wake_fd;
	door_token_random(a->request.token);
	memcpy(b->request.token, a->request.token, sizeof(a->request.token));
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;
	vi_conn_destroy(&p->a);
	vi_conn_destroy(&p->b);
	free(p);
	return 0;
}

/*
 * Plays the new owner of a's side, step 1 (shm_handoff.c does it after a fork): a fresh
 * segment, the intermit word for handoff K, and the ATTACH with TOKEN. Returns the memfd.
 */
static int pair_intermit(struct pair *p, uint32_t k, const uint8_t *token)
{
	int memfd = memfd_seal_create("test-new", p->size);
	assert_true(memfd >= 0);
	void *base = memfd_seal_map(memfd, p->size, NULL);
	assert_true(base != MAP_FAILED);
	assert_int_equal(shm_segment_init(base, p->size, RING), 0);
	munmap(base, p->size);
	atomic_store(&p->a.shm.session->sides[SHM_SEGMENT_CONNECTOR].intermit, k);
	struct door_message msg = { .type = DOOR_MESSAGE_ATTACH };
	memcpy(msg.attach.token, token, DOOR_TOKEN_SIZE);
	msg.attach.epoch = k;
	msg.attach.ring_size = (uint32_t)RING;
	assert_int_equal(door_send(p->a.shm.chan_fd, &msg, &memfd, 1), 0);
	return memfd;
}

/* What a's side reads from the segment of MEMFD (its new rings): up to LEN bytes. */
static ssize_t pair_read_new(struct pair *p, int memfd, enum shm_segment_side side, char *buf,
			     size_t len)
{
	void *base = memfd_seal_map(memfd, p->size, NULL);
	struct shm_ring tx, rx;
	assert_int_equal(shm_segment_attach(base, p->size, side, &tx, &rx), 0);
	ssize_t n = shm_ring_read(&rx, buf, len, 0);
	munmap(base, p->size);
	return n;
}

static void test_peer_is_asked_once_the_intermit_word_moves(void **state)
{
	struct pair *p = *state;
	assert_false(shm_handoff_asked(&p->b.shm));
	atomic_store(&p->a.shm.session->sides[SHM_SEGMENT_CONNECTOR].intermit, 1);
	assert_true(shm_handoff_asked(&p->b.shm));
	/* The other side does not ask itself. */
	assert_false(shm_handoff_asked(&p->a.shm));
}

static void test_handoff_switched_elsewhere_is_not_pending(void **state)
{
	struct pair *p = *state;
	struct shm_session_side *side = &p->a.shm.session->sides[SHM_SEGMENT_CONNECTOR];
	atomic_store(&side->intermit, 3);
	atomic_store(&side->switched, 3); /* another process of b's side answered it */
	assert_false(shm_handoff_asked(&p->b.shm));
	assert_int_equal(p->b.shm.answered, 3);
}

static void test_called_off_handoff_is_not_answered(void **state)
{
	struct pair *p = *state;
	struct shm_session_side *side = &p->a.shm.session->sides[SHM_SEGMENT_CONNECTOR];
	int memfd = pair_intermit(p, 1, p->a.shm.request.token);
	atomic_store(&side->paused, 1u | SHM_SESSION_CANCELLED);
	shm_handoff_answer(&p->b, -1);
	assert_int_equal(atomic_load(&p->b.shm.session->epoch), 0);
	assert_int_equal(p->b.shm.epoch, 0);
	assert_false(shm_handoff_asked(&p->b.shm));
	close(memfd);
}

static void test_answer_moves_bytes_in_flight_both_ways_in_order(void **state)
{
	struct pair *p = *state;
	struct shm_endpoint *a = &p->a.shm, *b = &p->b.shm;
	char buf[64];
	assert_int_equal(shm_ring_write(&a->tx, "hello", 5), 5);   /* a -> b, unread */
	assert_int_equal(shm_ring_write(&b->tx, "world!", 6), 6);  /* b -> a, unread */
	assert_int_equal(shm_ring_read(&b->rx, buf, 2, 0), 2);     /* b read "he" already */
	int memfd = pair_intermit(p, 1, a->request.token);
	assert_true(shm_handoff_asked(b));
	shm_handoff_answer(&p->b, -1);
	struct shm_session *s = a->session;
	assert_int_equal(atomic_load(&s->sides[SHM_SEGMENT_CONNECTOR].paused), 1);
	assert_int_equal(atomic_load(&s->sides[SHM_SEGMENT_CONNECTOR].marker), 6);
	assert_int_equal(atomic_load(&s->sides[SHM_SEGMENT_CONNECTOR].switched), 1);
	assert_int_equal(atomic_load(&s->epoch), 1);
	assert_int_equal(b->epoch, 1);
	/* b now reads the rest of a's bytes from the new segment, then nothing more. */
	assert_int_equal(shm_ring_read(&b->rx, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "llo", 3);
	assert_int_equal(shm_ring_read(&b->rx, buf, sizeof(buf), 0), -EAGAIN);
	/* a's new owner finds b's bytes in the new segment. */
	assert_int_equal(pair_read_new(p, memfd, SHM_SEGMENT_CONNECTOR, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "world!", 6);
	close(memfd);
	assert_false(shm_handoff_asked(b));
}

static void test_attach_with_a_wrong_token_is_refused(void **state)
{
	struct pair *p = *state;
	struct shm_endpoint *b = &p->b.shm;
	uint8_t wrong[DOOR_TOKEN_SIZE];
	char buf[8];
	memcpy(wrong, b->request.token, sizeof(wrong));
	wrong[0] ^= 0xff;
	assert_int_equal(shm_ring_write(&p->a.shm.tx, "abc", 3), 3);
	int memfd = pair_intermit(p, 1, wrong);
	shm_handoff_answer(&p->b, -1);
	struct shm_session *s = b->session;
	assert_int_equal(atomic_load(&s->sides[SHM_SEGMENT_CONNECTOR].refused), 1);
	assert_int_equal(atomic_load(&s->epoch), 0);
	assert_int_equal(b->epoch, 0);
	/* b stays on the old rings, with nothing lost. */
	assert_int_equal(shm_ring_read(&b->rx, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "abc", 3);
	close(memfd);
}

static void test_closed_half_is_carried_to_the_new_segment(void **state)
{
	struct pair *p = *state;
	struct shm_endpoint *a = &p->a.shm, *b = &p->b.shm;
	char buf[8];
	assert_int_equal(shm_ring_write(&a->tx, "bye", 3), 3);
	assert_int_equal(shm_ring_close(&a->tx), 0); /* a shut its writing down */
	int memfd = pair_intermit(p, 1, a->request.token);
	shm_handoff_answer(&p->b, -1);
	assert_int_equal(b->epoch, 1);
	assert_int_equal(shm_ring_read(&b->rx, buf, sizeof(buf), 0), 3);
	assert_int_equal(shm_ring_read(&b->rx, buf, sizeof(buf), 0), 0); /* then EOF */
	close(memfd);
}

static void test_stale_attach_is_skipped_for_the_one_asked(void **state)
{
	struct pair *p = *state;
	struct shm_endpoint *a = &p->a.shm, *b = &p->b.shm;
	/* Handoff 1 was called off after its ATTACH went out; handoff 2 is the one asked. */
	int old = pair_intermit(p, 1, a->request.token);
	atomic_store(&a->session->sides[SHM_SEGMENT_CONNECTOR].paused, 1u | SHM_SESSION_CANCELLED);
	int memfd = pair_intermit(p, 2, a->request.token);
	shm_handoff_answer(&p->b, -1);
	assert_int_equal(b->epoch, 2);
	assert_int_equal(atomic_load(&a->session->sides[SHM_SEGMENT_CONNECTOR].switched), 2);
	close(old);
	close(memfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_peer_is_asked_once_the_intermit_word_moves,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_handoff_switched_elsewhere_is_not_pending,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_called_off_handoff_is_not_answered, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_answer_moves_bytes_in_flight_both_ways_in_order,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_attach_with_a_wrong_token_is_refused, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_closed_half_is_carried_to_the_new_segment,
						pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_stale_attach_is_skipped_for_the_one_asked,
						pair_setup, pair_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
