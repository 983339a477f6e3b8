/* Unit tests of the stats segment: its file, its layout, slot allocation, the seqlock between writer and reader, and what the data path notes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "stats.h"

#define TEST_PID 4242

struct fixture {
	char dir[64];
	char path[128];
	struct vi_stats_header *h;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_stats.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/" VI_STATS_PREFIX "%d", f->dir, TEST_PID);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->h != NULL)
		stats_segment_unmap(f->h);
	unlink(f->path);
	char other[160];
	snprintf(other, sizeof(other), "%s/planted", f->dir);
	unlink(other);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct vi_stats_header *make_segment(struct fixture *f)
{
	assert_int_equal(stats_segment_create(f->dir, TEST_PID, "prog", 99, &f->h), 0);
	return f->h;
}

static const struct stats_identity identity = {
	.fd = 7,
	.kind = VI_STATS_STREAM,
	.transport = "tcp",
	.local = "127.0.0.1:40000",
	.peer = "127.0.0.1:5432",
	.caller = "libpq.so.5",
	.rule = "/etc/viaudit/x.policy:3",
	.reason = "no door at 127.0.0.1:5432: peer does not run viaudit",
};

static void test_segment_is_a_0600_file_with_a_valid_header(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((size_t)st.st_size, vi_stats_segment_size(VI_STATS_SLOTS));
	assert_int_equal(vi_stats_header_check(h, (size_t)st.st_size), 0);
	assert_int_equal(h->pid, TEST_PID);
	assert_int_equal(h->start_time, 99);
	assert_string_equal(h->program, "prog");
	assert_int_equal(atomic_load(&h->slot_high), 0);
}

static void test_segment_replaces_a_file_left_under_its_name(void **state)
{
	struct fixture *f = *state;
	FILE *old = fopen(f->path, "w");
	assert_non_null(old);
	fputs("a dead process's segment", old);
	fclose(old);
	struct vi_stats_header *h = make_segment(f);
	assert_int_equal(vi_stats_header_check(h, vi_stats_segment_size(VI_STATS_SLOTS)), 0);
}

static void test_segment_never_writes_through_a_planted_symlink(void **state)
{
	struct fixture *f = *state;
	char target[160];
	snprintf(target, sizeof(target), "%s/planted", f->dir);
	FILE *t = fopen(target, "w");
	assert_non_null(t);
	fputs("precious", t);
	fclose(t);
	assert_int_equal(symlink(target, f->path), 0);
	make_segment(f);
	struct stat st;
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 8); /* untouched */
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_segment_in_a_missing_directory_fails_with_errno(void **state)
{
	struct vi_stats_header *h = NULL;
	assert_int_equal(stats_segment_create("/nonexistent/dir", TEST_PID, "p", 0, &h), -ENOENT);
	assert_null(h);
}

static void test_header_check_tells_unfinished_from_foreign(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	size_t size = vi_stats_segment_size(VI_STATS_SLOTS);
	assert_int_equal(vi_stats_header_check(h, sizeof(*h) - 1), -EPROTO);
	assert_int_equal(vi_stats_header_check(h, size - 1), -EPROTO);
	h->version = VI_STATS_VERSION + 1;
	assert_int_equal(vi_stats_header_check(h, size), -EPROTO);
	h->version = VI_STATS_VERSION;
	atomic_store(&h->magic, 0);
	assert_int_equal(vi_stats_header_check(h, size), -EAGAIN);
}

static void test_claimed_slot_reads_back_its_identity(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct stats_counts counts = { 1, 2, 3, 4 };
	struct vi_stats_slot *slot = stats_slot_claim(h, &identity, VI_STATS_SHUT_WR, 0, &counts);
	assert_non_null(slot);
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(slot, &snap, 10), 1);
	assert_int_equal(snap.fd, 7);
	assert_int_equal(snap.kind, VI_STATS_STREAM);
	assert_string_equal(snap.transport, "tcp");
	assert_string_equal(snap.local, "127.0.0.1:40000");
	assert_string_equal(snap.peer, "127.0.0.1:5432");
	assert_string_equal(snap.caller, "libpq.so.5");
	assert_string_equal(snap.rule, "/etc/viaudit/x.policy:3");
	assert_string_equal(snap.reason, identity.reason);
	assert_int_equal(snap.bytes_in, 1);
	assert_int_equal(snap.bytes_out, 2);
	assert_int_equal(snap.handoffs, 3);
	assert_int_equal(snap.reconnects, 4);
	assert_int_equal(snap.state, VI_STATS_SHUT_WR);
	assert_int_equal(atomic_load(&h->published), 1);
	assert_int_equal(atomic_load(&h->slot_high), 1);
}

static void test_unclaimed_slot_reads_as_free(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(&vi_stats_slots(h)[0], &snap, 10), 0);
}

static void test_released_slot_is_free_and_taken_again_first(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct vi_stats_slot *a = stats_slot_claim(h, &identity, 0, 0, NULL);
	struct vi_stats_slot *b = stats_slot_claim(h, &identity, 0, 0, NULL);
	struct vi_stats_slot *c = stats_slot_claim(h, &identity, 0, 0, NULL);
	assert_ptr_equal(b, a + 1);
	assert_ptr_equal(c, a + 2);
	stats_slot_release(h, b);
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(b, &snap, 10), 0);
	assert_ptr_equal(stats_slot_claim(h, &identity, 0, 0, NULL), b);
	assert_ptr_equal(stats_slot_claim(h, &identity, 0, 0, NULL), a + 3);
	assert_int_equal(atomic_load(&h->slot_high), 4);
}

static void test_reused_slot_starts_with_zero_counters(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct vi_stats_slot *a = stats_slot_claim(h, &identity, 0, 0, NULL);
	atomic_fetch_add(&a->bytes_in, 12345);
	stats_slot_release(h, a);
	struct vi_stats_slot *again = stats_slot_claim(h, &identity, 0, 0, NULL);
	assert_ptr_equal(again, a);
	assert_int_equal(atomic_load(&again->bytes_in), 0);
}

static void test_full_segment_counts_what_it_dropped(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	for (unsigned i = 0; i < VI_STATS_SLOTS; i++)
		assert_non_null(stats_slot_claim(h, &identity, 0, 0, NULL));
	assert_null(stats_slot_claim(h, &identity, 0, 0, NULL));
	assert_int_equal(atomic_load(&h->dropped), 1);
	stats_slot_release(h, &vi_stats_slots(h)[100]);
	assert_ptr_equal(stats_slot_claim(h, &identity, 0, 0, NULL), &vi_stats_slots(h)[100]);
}

static void test_long_rule_keeps_its_end_and_long_text_is_cut(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	char rule[300], reason[400];
	memset(rule, 'd', sizeof(rule));
	rule[sizeof(rule) - 1] = '\0';
	memcpy(rule + sizeof(rule) - 13, "/x.policy:12", 12);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	struct stats_identity id = identity;
	id.rule = rule;
	id.reason = reason;
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(stats_slot_claim(h, &id, 0, 0, NULL), &snap, 10), 1);
	assert_int_equal(strlen(snap.rule), VI_STATS_RULE_MAX - 1);
	assert_string_equal(snap.rule + strlen(snap.rule) - 12, "/x.policy:12");
	assert_int_equal(strlen(snap.reason), VI_STATS_REASON_MAX - 1);
	assert_int_equal(snap.reason[0], 'r');
}

static void test_reader_gives_up_on_a_slot_a_writer_never_left(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_header *h = make_segment(f);
	struct vi_stats_slot *slot = stats_slot_claim(h, &identity, 0, 0, NULL);
	atomic_fetch_add(&slot->seq, 1); /* a writer that died inside */
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(slot, &snap, 100), -EAGAIN);
}

/* ---- a writer and a reader at once ---- */

struct race {
	struct vi_stats_header *h;
	struct vi_stats_slot *slot;
	atomic_bool stop;
	bool reuse; /* release and claim again, instead of rewriting the identity */
};

/* An identity whose every field is derived from n, so a mix of two is visible. */
static void race_identity(unsigned n, struct stats_identity *id, char *local, char *peer,
			  char *reason)
{
	sprintf(local, "10.0.%u.%u:%u", n % 256, n % 7, n);
	sprintf(peer, "10.1.%u.%u:%u", n % 256, n % 7, n);
	sprintf(reason, "reason %u %u %u", n, n, n);
	*id = identity;
	id->fd = (int)n;
	id->local = local;
	id->peer = peer;
	id->reason = reason;
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	char local[48], peer[48], reason[64];
	struct stats_identity id;
	for (unsigned n = 1; !atomic_load(&r->stop); n++) {
		race_identity(n, &id, local, peer, reason);
		if (r->reuse) {
			stats_slot_release(r->h, r->slot);
			struct stats_counts counts = { n, n, n, n };
			r->slot = stats_slot_claim(r->h, &id, 0, 0, &counts);
		} else {
			stats_slot_update(r->slot, &id);
		}
	}
	return NULL;
}

static void check_reader_sees_whole_identities(struct fixture *f, bool reuse)
{
	struct race r = { .h = make_segment(f), .reuse = reuse };
	r.slot = stats_slot_claim(r.h, &identity, 0, 0, NULL);
	struct vi_stats_slot *slot = r.slot; /* claims always find this one again */
	pthread_t writer;
	assert_int_equal(pthread_create(&writer, NULL, race_writer, &r), 0);
	unsigned whole = 0, torn = 0;
	time_t deadline = time(NULL) + 5;
	for (long i = 0; whole < 20000 && (i % 1024 != 0 || time(NULL) < deadline); i++) {
		struct vi_stats_snapshot snap;
		if (vi_stats_slot_read(slot, &snap, 100) != 1 || snap.fd == 7)
			continue;
		char local[48], peer[48], reason[64];
		struct stats_identity id;
		race_identity((unsigned)snap.fd, &id, local, peer, reason);
		if (strcmp(snap.local, local) != 0 || strcmp(snap.peer, peer) != 0 ||
		    strcmp(snap.reason, reason) != 0 || (reuse && snap.bytes_in != (uint64_t)snap.fd))
			torn++;
		whole++;
	}
	/* The writer stops before any check can fail and end the test under it. */
	atomic_store(&r.stop, true);
	pthread_join(writer, NULL);
	assert_true(whole > 0);
	assert_int_equal(torn, 0);
}

static void test_reader_never_sees_a_torn_identity(void **state)
{
	check_reader_sees_whole_identities(*state, false);
}

static void test_reader_never_mixes_two_connections_of_one_slot(void **state)
{
	check_reader_sees_whole_identities(*state, true);
}

#define ADDER_THREADS 4
#define ADDER_ROUNDS 100000

static void *counter_adder(void *arg)
{
	struct vi_stats_slot *slot = arg;
	for (int i = 0; i < ADDER_ROUNDS; i++)
		atomic_fetch_add_explicit(&slot->bytes_out, 3, memory_order_relaxed);
	return NULL;
}

/* Relaxed atomic adds from threads at once lose nothing, and the reader sees their sum. */
static void test_counters_add_up_from_many_threads(void **state)
{
	struct fixture *f = *state;
	struct vi_stats_slot *slot = stats_slot_claim(make_segment(f), &identity, 0, 0, NULL);
	pthread_t t[ADDER_THREADS];
	for (int i = 0; i < ADDER_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, counter_adder, slot), 0);
	for (int i = 0; i < ADDER_THREADS; i++)
		pthread_join(t[i], NULL);
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(slot, &snap, 10), 1);
	assert_int_equal(snap.bytes_out, 3ull * ADDER_THREADS * ADDER_ROUNDS);
}

/* ---- the glue: what the data path and shutdown note in a virtual socket's slot ---- */

static const struct vi_route_choice no_route = { .route = NULL, .caller = "test" };

/* A virtual stream socket on the tcp transport, published in a fresh slot, at fd 40. */
static struct vsock *published_vsock(struct fixture *f, struct vi_stats_slot **slot)
{
	if (vsock_table.slots == NULL)
		assert_int_equal(vsock_table_init(), 0);
	struct vsock *vs = vsock_new(VSOCK_STREAM, &no_route, VI_PROTO_TCP4);
	assert_non_null(vs);
	vs->conn.transport = VI_TRANSPORT_TCP;
	*slot = stats_slot_claim(make_segment(f), &identity, 0, VI_TRANSPORT_TCP, NULL);
	atomic_store(&vs->stat, *slot);
	assert_int_equal(vsock_install(40, vs), 0);
	return vs;
}

static void test_data_path_counts_bytes_each_way_but_not_peeks(void **state)
{
	struct vi_stats_slot *slot;
	struct vsock *vs = published_vsock(*state, &slot);
	stats_count(vs, 40, 12000, false, 0);
	stats_count(vs, 40, 345, false, MSG_NOSIGNAL);
	stats_count(vs, 40, 700, true, 0);
	stats_count(vs, 40, 77, true, MSG_WAITALL);
	stats_count(vs, 40, 50, true, MSG_PEEK);
	stats_count(vs, 40, -EAGAIN, true, 0);
	stats_count(vs, 40, -EAGAIN, false, 0);
	assert_int_equal(atomic_load(&slot->bytes_out), 12345);
	assert_int_equal(atomic_load(&slot->bytes_in), 777);
	assert_int_equal(atomic_load(&slot->state), 0);
	vsock_forget(40);
}

static void test_end_of_stream_and_reset_set_their_state_bits(void **state)
{
	struct vi_stats_slot *slot;
	struct vsock *vs = published_vsock(*state, &slot);
	stats_count(vs, 40, 0, true, 0);
	assert_int_equal(atomic_load(&slot->state), VI_STATS_PEER_EOF);
	stats_count(vs, 40, -ECONNRESET, false, 0);
	assert_int_equal(atomic_load(&slot->state), VI_STATS_PEER_EOF | VI_STATS_RESET);
	vsock_forget(40);
}

static void test_shutdown_marks_its_half_and_a_later_epipe_is_no_reset(void **state)
{
	struct vi_stats_slot *slot;
	struct vsock *vs = published_vsock(*state, &slot);
	stats_note_shutdown(vs, SHUT_WR, -ENOTCONN); /* failed: nothing changes */
	assert_int_equal(atomic_load(&slot->state), 0);
	stats_note_shutdown(vs, SHUT_WR, 0);
	assert_int_equal(atomic_load(&slot->state), VI_STATS_SHUT_WR);
	stats_count(vs, 40, -EPIPE, false, 0);
	assert_int_equal(atomic_load(&slot->state), VI_STATS_SHUT_WR);
	stats_note_shutdown(vs, SHUT_RDWR, 0);
	assert_int_equal(atomic_load(&slot->state), VI_STATS_SHUT_WR | VI_STATS_SHUT_RD);
	vsock_forget(40);
}

static void test_last_close_frees_the_slot(void **state)
{
	struct vi_stats_slot *slot;
	struct vsock *vs = published_vsock(*state, &slot);
	assert_int_equal(vsock_install(41, vsock_ref(vs)), 0); /* a dup */
	vsock_forget(40);
	struct vi_stats_snapshot snap;
	assert_int_equal(vi_stats_slot_read(slot, &snap, 10), 1);
	vsock_forget(41);
	assert_int_equal(vi_stats_slot_read(slot, &snap, 10), 0);
	assert_int_equal(atomic_load(&slot->claimed), 0);
}

/* ---- /proc/PID/stat ---- */

static void test_start_time_is_field_22_after_the_command_name(void **state)
{
	uint64_t start = 0;
	const char *text = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 "
			   "987654 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
	assert_int_equal(vi_stats_parse_start_time(text, &start), 0);
	assert_int_equal(start, 987654);
	assert_int_equal(vi_stats_parse_start_time("1234 (x) S 1 2", &start), -EPROTO);
	assert_int_equal(vi_stats_parse_start_time("no parenthesis", &start), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_segment_is_a_0600_file_with_a_valid_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_replaces_a_file_left_under_its_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_never_writes_through_a_planted_symlink, setup, teardown),
		cmocka_unit_test(test_segment_in_a_missing_directory_fails_with_errno),
		cmocka_unit_test_setup_teardown(test_header_check_tells_unfinished_from_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claimed_slot_reads_back_its_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclaimed_slot_reads_as_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_released_slot_is_free_and_taken_again_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reused_slot_starts_with_zero_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_segment_counts_what_it_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_rule_keeps_its_end_and_long_text_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_gives_up_on_a_slot_a_writer_never_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_never_sees_a_torn_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_never_mixes_two_connections_of_one_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_add_up_from_many_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_path_counts_bytes_each_way_but_not_peeks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_of_stream_and_reset_set_their_state_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_marks_its_half_and_a_later_epipe_is_no_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_close_frees_the_slot, setup, teardown),
		cmocka_unit_test(test_start_time_is_field_22_after_the_command_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
