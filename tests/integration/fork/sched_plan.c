/* Makes and prints the seeded schedules of fork_sched: turns, their byte counts, first touches, and the bystander's and victim's fates. */
#include "sched_plan.h"

#include <string.h>

#include "fault_util.h"
#include "fork_util.h"

#define MIB ((uint64_t)1 << 20)
#define KIB ((uint64_t)1 << 10)

/* A number in [0, N) (0 when N is 0). */
static uint64_t plan_below(uint64_t *rng, uint64_t n)
{
	uint64_t r = fault_random_next(rng);

	return n == 0 ? 0 : r % n;
}

/* True with PERCENT % probability. */
static bool plan_chance(uint64_t *rng, unsigned percent)
{
	return plan_below(rng, 100) < percent;
}

/*
 * A byte count of one stream in one turn, 0 .. 2 MiB: none, a few bytes, up to a ring's
 * worth, exactly 1.5 MiB (more than the default ring), or up to 2 MiB.
 */
static uint64_t plan_bytes(uint64_t *rng)
{
	uint64_t p = plan_below(rng, 100);

	if (p < 15)
		return 0;
	if (p < 30)
		return 1 + plan_below(rng, 64);
	if (p < 50)
		return 65 + plan_below(rng, 64 * KIB - 64);
	if (p < 70)
		return 64 * KIB + plan_below(rng, MIB - 64 * KIB);
	if (p < 85)
		return MIB + MIB / 2;
	return MIB + plan_below(rng, MIB + 1);
}

/* The first touch's delay: none, a moment, or long enough for the peer to fill what it can. */
static unsigned plan_touch_delay(uint64_t *rng)
{
	static const unsigned delays[] = { 0, 0, 0, 0, 100, 100, 2000, 2000, 2000, 20000 };

	return delays[plan_below(rng, sizeof delays / sizeof delays[0])];
}

/* A delay after a go, for an event meant to land in the middle of a handoff. */
static unsigned plan_event_delay(uint64_t *rng)
{
	static const unsigned delays[] = { 0, 30, 100, 300, 1000, 3000 };

	return delays[plan_below(rng, sizeof delays / sizeof delays[0])];
}

/* How much of the server's stream the peer leaves unread, of at most MAX: often none or all it may. */
static uint64_t plan_unread(uint64_t *rng, uint64_t max)
{
	uint64_t p = plan_below(rng, 100);

	if (max > SCHED_UNREAD_MAX)
		max = SCHED_UNREAD_MAX;
	if (p < 35)
		return 0;
	if (p < 60)
		return max;
	return plan_below(rng, max + 1);
}

static enum sched_touch plan_touch(uint64_t *rng)
{
	uint64_t p = plan_below(rng, 100);

	return p < 40 ? SCHED_TOUCH_READ : p < 75 ? SCHED_TOUCH_WRITE : SCHED_TOUCH_POLL;
}

/* Turns after the fork: 1 (30 %), 2 (35 %), 3 (20 %) or 4 (15 %). */
static int plan_turns_after_fork(uint64_t *rng)
{
	uint64_t p = plan_below(rng, 100);

	return p < 30 ? 1 : p < 65 ? 2 : p < 85 ? 3 : 4;
}

/* Owners: the parent before the fork, then parent and child by turns, starting with FIRST. */
static void plan_owners(struct sched_plan *plan, enum sched_proc first)
{
	plan->turn[0].owner = SCHED_PARENT;
	for (int k = 1; k < plan->turns; k++)
		plan->turn[k].owner = (k % 2 == 1) ? first
						   : (first == SCHED_PARENT ? SCHED_CHILD : SCHED_PARENT);
}

/* Each turn's byte counts, cumulative, with what the first touch needs (a byte to read or write). */
static void plan_bytes_of_turns(struct sched_plan *plan, uint64_t *rng)
{
	uint64_t sent = 0, received = 0, peer_received = 0, peer_allowed = 0;

	for (int k = 0; k < plan->turns; k++) {
		struct sched_turn *t = &plan->turn[k];
		uint64_t w = plan_bytes(rng), r = plan_bytes(rng), extra;
		bool last = k == plan->turns - 1;

		t->touch = k == 0 ? SCHED_TOUCH_READ : plan_touch(rng);
		t->delay_us = k == 0 ? 0 : plan_touch_delay(rng);
		if (k > 0 && t->touch == SCHED_TOUCH_READ && r == 0)
			r = 1 + plan_below(rng, 4096);
		if (k > 0 && t->touch == SCHED_TOUCH_WRITE && w == 0)
			w = 1 + plan_below(rng, 4096);
		if (k > 0 && t->touch == SCHED_TOUCH_POLL && w == 0 && r == 0)
			r = 1 + plan_below(rng, 4096);
		sent += w;
		received += r;
		peer_received = last ? sent : sent - plan_unread(rng, sent - peer_received);
		extra = plan_chance(rng, 40) ? 0 : plan_bytes(rng);
		if (received + extra > peer_allowed)
			peer_allowed = received + extra;
		t->owner_sent = sent;
		t->owner_received = last ? peer_allowed : received;
		t->peer_received = peer_received;
		t->peer_allowed = peer_allowed;
	}
	plan->server_total = sent;
	plan->peer_total = peer_allowed;
}

int sched_plan_last_turn_of(const struct sched_plan *plan, enum sched_proc proc)
{
	int last = -1;

	for (int k = 0; k < plan->turns; k++)
		if (plan->turn[k].owner == proc)
			last = k;
	return last;
}

/* The bystander: the process that does not own the last turn; its fate comes at the go after its last turn. */
static void plan_bystander(struct sched_plan *plan, uint64_t *rng)
{
	struct sched_event_plan *b = &plan->bystander;
	enum sched_proc final = plan->turn[plan->turns - 1].owner;
	uint64_t p = plan_below(rng, 100);

	b->who = final == SCHED_PARENT ? SCHED_CHILD : SCHED_PARENT;
	/* A child that never owns the socket meets its fate at the first go after the fork. */
	b->turn = sched_plan_last_turn_of(plan, b->who) + 1;
	if (b->turn == 0)
		b->turn = 1;
	b->fate = p < 25 ? SCHED_FATE_KEEP : p < 55 ? SCHED_FATE_CLOSE : p < 80 ? SCHED_FATE_EXIT
										 : SCHED_FATE_KILL;
	p = plan_below(rng, 100);
	b->when = p < 50 ? SCHED_WHEN_BEFORE : p < 75 ? SCHED_WHEN_AFTER_TOUCH : SCHED_WHEN_DELAY;
	b->delay_us = plan_event_delay(rng);
	if (b->fate == SCHED_FATE_KILL)
		b->when = SCHED_WHEN_BEFORE; /* a kill during the handoff is for --kill parent */
}

/* --kill: the child must own the last turn; the victim dies during its go. */
static void plan_victim(struct sched_plan *plan, uint64_t *rng)
{
	struct sched_event_plan *b = &plan->bystander;
	uint64_t p = plan_below(rng, 100);
	enum sched_when when = plan_chance(rng, 30) ? SCHED_WHEN_AFTER_TOUCH : SCHED_WHEN_DELAY;
	unsigned delay = plan_event_delay(rng);

	if (plan->victim == SCHED_VICTIM_PARENT) {
		/* The bystander is the parent: killed during the child's go after its last turn. */
		b->fate = SCHED_FATE_KILL;
		b->when = when;
		b->delay_us = delay;
		return;
	}
	/* The parent keeps its copy, or closes it or exits before; the child or the peer dies. */
	b->fate = p < 40 ? SCHED_FATE_KEEP : p < 70 ? SCHED_FATE_CLOSE : SCHED_FATE_EXIT;
	b->when = SCHED_WHEN_BEFORE;
	plan->has_kill = true;
	plan->kill.who = plan->victim == SCHED_VICTIM_CHILD ? SCHED_CHILD : SCHED_PEER;
	plan->kill.fate = SCHED_FATE_KILL;
	plan->kill.turn = plan->turns - 1;
	plan->kill.when = when;
	plan->kill.delay_us = delay;
}

void sched_plan_make(struct sched_plan *plan, uint64_t seed, enum sched_victim victim)
{
	uint64_t rng = seed * 0x9e3779b97f4a7c15ull ^ 0xf0f5c4ed5eedull;
	enum sched_proc first;

	memset(plan, 0, sizeof *plan);
	plan->seed = seed;
	plan->victim = victim;
	plan->turns = 1 + plan_turns_after_fork(&rng);
	first = plan_chance(&rng, 50) ? SCHED_PARENT : SCHED_CHILD;
	plan_owners(plan, first);
	/* With a victim the child owns the last turn: flip the order if it does not. */
	if (victim != SCHED_VICTIM_NONE && plan->turn[plan->turns - 1].owner != SCHED_CHILD)
		plan_owners(plan, first == SCHED_PARENT ? SCHED_CHILD : SCHED_PARENT);
	plan_bytes_of_turns(plan, &rng);
	plan->peer_shut_early = plan_chance(&rng, 25);
	plan_bystander(plan, &rng);
	if (victim != SCHED_VICTIM_NONE)
		plan_victim(plan, &rng);
	/* Drawn last, so that the rest of a seed's plan stays what it was before this existed. */
	plan->peer_idles_away = plan_chance(&rng, 50);
}

const char *sched_proc_name(enum sched_proc proc)
{
	switch (proc) {
	case SCHED_PARENT:
		return "parent";
	case SCHED_CHILD:
		return "child";
	default:
		return "peer";
	}
}

static const char *plan_touch_name(enum sched_touch touch)
{
	return touch == SCHED_TOUCH_READ ? "read" : touch == SCHED_TOUCH_WRITE ? "write" : "poll";
}

const char *sched_fate_name(enum sched_fate fate)
{
	switch (fate) {
	case SCHED_FATE_KEEP:
		return "keeps its copy";
	case SCHED_FATE_CLOSE:
		return "closes";
	case SCHED_FATE_EXIT:
		return "exits";
	default:
		return "SIGKILLed";
	}
}

static void plan_print_event(FILE *out, const struct sched_plan *plan,
			     const struct sched_event_plan *e)
{
	const char *next = sched_proc_name(plan->turn[e->turn].owner);

	fprintf(out, "%s %s", sched_proc_name(e->who), sched_fate_name(e->fate));
	if (e->fate == SCHED_FATE_KEEP)
		return;
	if (e->when == SCHED_WHEN_BEFORE)
		fprintf(out, " before t%d", e->turn);
	else if (e->when == SCHED_WHEN_AFTER_TOUCH)
		fprintf(out, " after %s's first touch in t%d", next, e->turn);
	else
		fprintf(out, " %uus into t%d", e->delay_us, e->turn);
}

void sched_plan_print(FILE *out, const char *prefix, const struct sched_plan *plan)
{
	char a[32], b[32], c[32], d[32];
	const struct sched_turn *prev = NULL;

	fprintf(out, "%sS->P %s, P->S %s;", prefix,
		fork_format_bytes(plan->server_total, a, sizeof a),
		fork_format_bytes(plan->peer_total, b, sizeof b));
	for (int k = 0; k < plan->turns; k++) {
		const struct sched_turn *t = &plan->turn[k];
		uint64_t sent0 = prev ? prev->owner_sent : 0, received0 = prev ? prev->owner_received : 0;

		if (k == 1)
			fprintf(out, " fork |");
		fprintf(out, " t%d %s", k, sched_proc_name(t->owner));
		if (k > 0)
			fprintf(out, " %s+%uus", plan_touch_name(t->touch), t->delay_us);
		if (k == plan->turns - 1) {
			fprintf(out, " to the end (sends %s, reads %s) |",
				fork_format_bytes(t->owner_sent - sent0, a, sizeof a),
				fork_format_bytes(t->owner_received - received0, b, sizeof b));
			break;
		}
		fprintf(out, " sends %s reads %s, then in flight S->P %s, P->S up to %s |",
			fork_format_bytes(t->owner_sent - sent0, a, sizeof a),
			fork_format_bytes(t->owner_received - received0, b, sizeof b),
			fork_format_bytes(t->owner_sent - t->peer_received, c, sizeof c),
			fork_format_bytes(t->peer_allowed - t->owner_received, d, sizeof d));
		prev = t;
	}
	fprintf(out, " ");
	plan_print_event(out, plan, &plan->bystander);
	if (plan->has_kill) {
		fprintf(out, ", ");
		plan_print_event(out, plan, &plan->kill);
	}
	if (plan->peer_shut_early)
		fprintf(out, ", peer shuts down early");
	fprintf(out, ", idle peer %s", plan->peer_idles_away ? "away" : "polls");
	fprintf(out, "\n");
}
