/* The processes of one fork_sched run (the server, its forked child, the peer) and the messages they exchange with the driver over pipes. */
#ifndef VI_TESTS_SCHED_ROLES_H
#define VI_TESTS_SCHED_ROLES_H

#include <stdint.h>
#include <sys/types.h>

#include "fork_util.h"
#include "sched_plan.h"
#include "stream.h"

/*
 * The driver tells each process what to do next over its own command pipe; each process
 * answers on the one event pipe the driver reads. Every message is one fixed-size write
 * below PIPE_BUF, so writes from several processes never interleave.
 */
enum sched_command_type {
	SCHED_CMD_GO,        /* owner: run turn `turn` from the offsets given */
	SCHED_CMD_FORK,      /* parent, after turn 0: fork the child */
	SCHED_CMD_PEER_TURN, /* peer: the plan of turn `turn` applies now */
	SCHED_CMD_TO_END,    /* owner or peer: run both streams to their end */
	SCHED_CMD_CLOSE,     /* close the socket (and stay) */
	SCHED_CMD_EXIT,      /* exit(0) at once, the socket still open */
	SCHED_CMD_FINISH,    /* close the socket if open, report, exit(0) */
};

struct sched_command {
	uint32_t type;
	int32_t turn;
	uint64_t sent, received; /* SCHED_CMD_GO: where the previous owner left the streams */
};

enum sched_event_type {
	SCHED_EV_PORT,      /* parent: listening on `value` */
	SCHED_EV_READY,     /* parent: accepted; peer: connected from port `value` */
	SCHED_EV_FORKED,    /* parent: forked the child, pid `value` */
	SCHED_EV_TOUCHED,   /* owner: its first touch of turn `turn` returned (`value` bytes) */
	SCHED_EV_TURN_DONE, /* owner: turn `turn` ended with `result` */
	SCHED_EV_PEER_DONE, /* peer: its share of turn `turn` is done, with `result` */
	SCHED_EV_CLOSED,    /* closed its socket: counts of shared memory after the close */
	SCHED_EV_EXITING,   /* about to exit(0) */
	SCHED_EV_FAILED,    /* the set-up failed: `text` says what */
};

/* struct stream_result without the pointer, to cross a pipe. */
struct sched_result {
	int32_t outcome, error;
	uint64_t sent, received, offset;
	uint8_t got, want;
	char call[10];
};

struct sched_event {
	uint32_t type;
	int32_t proc; /* enum sched_proc */
	int32_t turn;
	int32_t pid;
	uint64_t value;
	struct sched_result result;
	struct fork_memfd_count count, baseline; /* SCHED_EV_CLOSED */
	int32_t released;                        /* SCHED_EV_CLOSED: count came back to baseline */
	char text[40];                           /* SCHED_EV_FAILED */
};

/* The pipes of one run, as the processes see them (-1: closed in this process). */
struct sched_pipes {
	int event_write;
	int command_read[SCHED_PROCS];
};

/* What a process needs to know to play its part. */
struct sched_role_args {
	const struct sched_plan *plan;
	struct sched_pipes pipes;
	int stall_ms;
	unsigned port; /* the peer: where to connect */
};

/* The server process (the parent; it forks the child on SCHED_CMD_FORK). Never returns. */
void sched_role_server(const struct sched_role_args *args) __attribute__((noreturn));

/* The peer process. Never returns. */
void sched_role_peer(const struct sched_role_args *args) __attribute__((noreturn));

/* The seeds of the two streams of a plan, the same in every process. */
uint64_t sched_server_seed(const struct sched_plan *plan);
uint64_t sched_peer_seed(const struct sched_plan *plan);

/* Copies between struct stream_result and its pipe form. */
void sched_result_pack(struct sched_result *out, const struct stream_result *in);
void sched_result_unpack(struct stream_result *out, const struct sched_result *in);

#endif
