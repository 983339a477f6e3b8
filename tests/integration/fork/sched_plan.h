/* The schedules of fork_sched: made from a seed alone, so any run can be made again from its number. */
#ifndef VI_TESTS_SCHED_PLAN_H
#define VI_TESTS_SCHED_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * One connection over 127.0.0.1 between the peer and a server. The server ("the parent")
 * moves bytes both ways in turn 0, forks while bytes are in flight both ways, and from then
 * on the parent and its child own the socket by turns, strictly one after the other: each
 * turn's owner touches the socket first by read(), write() or poll(), moves its share of
 * both streams and hands the offsets it reached on to the next owner (over the driver's
 * pipes). The process that does not own the last turn (the bystander) keeps its copy, closes
 * it, exits or is killed, before or during the next owner's first touch. The last owner
 * runs both streams to their end. All the while the peer runs both streams at its own pace
 * within what the plan allows it per turn.
 */
#define SCHED_TURNS_MAX 6

/*
 * The most of the server's stream the peer leaves unread at the end of a turn: below the
 * smallest ring (1 MiB) and the kernel's loopback buffers (~4 MiB), so that the owner's
 * writes of a turn always fit and no turn can wait on itself. The peer's stream has no such
 * bound: what the server does not read waits in the peer's blocked writes.
 */
#define SCHED_UNREAD_MAX ((uint64_t)768 << 10)

enum sched_proc { SCHED_PARENT, SCHED_CHILD, SCHED_PEER, SCHED_PROCS };

/* How a turn's owner first touches the socket. */
enum sched_touch { SCHED_TOUCH_READ, SCHED_TOUCH_WRITE, SCHED_TOUCH_POLL };

/* What becomes of the bystander (or, with a victim, of the victim). */
enum sched_fate { SCHED_FATE_KEEP, SCHED_FATE_CLOSE, SCHED_FATE_EXIT, SCHED_FATE_KILL };

/* When, relative to the next owner's go: before it, once its first touch returned, or after a delay. */
enum sched_when { SCHED_WHEN_BEFORE, SCHED_WHEN_AFTER_TOUCH, SCHED_WHEN_DELAY };

/* --kill: who is SIGKILLed while the child takes the connection over (none: every byte must arrive). */
enum sched_victim { SCHED_VICTIM_NONE, SCHED_VICTIM_PARENT, SCHED_VICTIM_CHILD, SCHED_VICTIM_PEER };

/* One turn. Offsets are cumulative: where each stream stands at the end of the turn. */
struct sched_turn {
	enum sched_proc owner;
	enum sched_touch touch;   /* not for turn 0 */
	unsigned delay_us;        /* before the first touch */
	uint64_t owner_sent;      /* of the server's stream (the last turn: all of it) */
	uint64_t owner_received;  /* of the peer's stream (the last turn: all of it) */
	uint64_t peer_received;   /* of the server's stream, by the turn's end */
	uint64_t peer_allowed;    /* of the peer's stream, the most it may have sent in the turn */
};

/* An event around the go of one turn: the bystander's fate, or the victim's kill. */
struct sched_event_plan {
	enum sched_proc who;
	enum sched_fate fate;
	int turn;                 /* around the go of this turn */
	enum sched_when when;
	unsigned delay_us;        /* SCHED_WHEN_DELAY: after the go */
};

struct sched_plan {
	uint64_t seed;
	enum sched_victim victim;
	int turns; /* turn 0 before the fork, at least one after it */
	struct sched_turn turn[SCHED_TURNS_MAX];
	uint64_t server_total, peer_total; /* the streams' lengths */
	bool peer_shut_early;              /* the peer shuts its write side once all is sent */
	/*
	 * With nothing to move, the peer waits in poll() without its socket (a program busy
	 * elsewhere), instead of with it for POLLIN (a program waiting for the server's reply).
	 */
	bool peer_idles_away;
	struct sched_event_plan bystander;
	struct sched_event_plan kill;      /* victim child or peer: who is SCHED_PEER/CHILD */
	bool has_kill;
};

/* Makes the plan of SEED (with VICTIM, for --kill). */
void sched_plan_make(struct sched_plan *plan, uint64_t seed, enum sched_victim victim);

/* Prints the plan on one line after PREFIX. */
void sched_plan_print(FILE *out, const char *prefix, const struct sched_plan *plan);

/* "keeps its copy", "closes", "exits", "SIGKILLed". */
const char *sched_fate_name(enum sched_fate fate);

/* "parent", "child", "peer". */
const char *sched_proc_name(enum sched_proc proc);

/* The turn index after which PROC never owns the socket again (-1 if it never owns it). */
int sched_plan_last_turn_of(const struct sched_plan *plan, enum sched_proc proc);

#endif
