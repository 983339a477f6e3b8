/* The listener's side of the door, shared by shm_setup.c and shm_door_shared.c: the table of requests waiting for their connection, and the board of a door shared by forked workers. */
#ifndef VI_TRANSPORT_SHM_LISTENER_H
#define VI_TRANSPORT_SHM_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "door_message.h"
#include "futex_sem.h"
#include "shm.h"

/* Requests waiting for their TCP connection to be accepted. */
#define SHM_PENDING_MAX 1024
/* A request whose connection has not come after this long is dropped. */
#define SHM_PENDING_TTL_NS (30LL * 1000000000LL)
/*
 * A shared door: how long an acceptor waits at most for its request while another process
 * is inside a drain that may hold it. A drain takes microseconds (at most SHM_REQUEST_WAIT_MS
 * more), so this is reached only on an overloaded machine, where a runnable process can wait
 * a long time for a CPU (seen: over 100 ms with 40 runnable on 2 cores). Giving up costs more
 * (the connector waits up to SHM_ANSWER_MS, 1 s, then moves to TCP); waiting longer than
 * that is useless, hence half of it.
 */
#define SHM_SHARED_WAIT_MS 500
/*
 * A shared door: how long a drain waits for the request of a connector it took off the door
 * before the request was sent (the connector is between its door connect and its send). It
 * cannot keep it: a worker serving a connection does not come back to the door for long, and
 * the acceptor of that connection could not find its request. So it closes it then ...
 */
#define SHM_REQUEST_WAIT_MS 20
/*
 * ... and a connector that took longer than this to get its request ready after its door
 * connect (a loaded machine) connects to the door again to send it, so that the request
 * follows its connection at once.
 */
#define SHM_REQUEST_LATE_MS 5
/* Drains a shared door's board tracks by pid at once (more are counted blind). */
#define SHM_DRAINERS_MAX 32
/* Requests forwarded or refused that a shared door's board remembers (a power of two). */
#define SHM_FORWARD_LOG 64
/* Requests one drain remembers having forwarded (see setup_shared_sort). */
#define SHM_DRAIN_REMEMBERED 16

struct shm_pending {
	int door_fd; /* the connector's door connection (a FORWARD not read yet: the forwarder's);
		      * -1: free slot */
	bool have_request;
	struct door_request request;
	int fds[3]; /* DOOR_FD_MEMFD, DOOR_FD_CONNECTOR_WAKE, DOOR_FD_LISTENER_WAKE */
	long long since_ns; /* when the request was made, as near as is known */
};

/*
 * What the processes sharing a door tell each other: an anonymous shared page mapped when
 * the door is opened, so that every process that inherits the door inherits it too.
 */
struct shm_door_board {
	/* Drains going on: pid << 32 | the drain's number; 0: free. */
	_Atomic uint64_t drainers[SHM_DRAINERS_MAX];
	/* What each holds that others may wait for: an unknown episode, a source's key, or 0. */
	_Atomic uint64_t holding[SHM_DRAINERS_MAX];
	_Atomic uint32_t drains;   /* drains begun, ever: numbers them */
	_Atomic uint32_t crowded;  /* drains going on that found no free slot in drainers */
	_Atomic uint32_t logged; /* requests put back on the door or refused by a drain, ever */
	/* Request N's source (setup_source_key), bit 0 set when it was turned down. */
	_Atomic uint64_t log[SHM_FORWARD_LOG];
	struct futex_sem drain_end; /* acceptors waiting for a drain to end */
};

struct shm_listener {
	int door_fd;
	struct door_address address; /* where the TCP listener is bound */
	bool v6only;
	struct shm_options options;
	unsigned forks;               /* setup_forks when the door was opened */
	pid_t pid;                    /* the process this copy of the table belongs to */
	struct shm_door_board *board; /* shared with every process that has the door */
	size_t npending;
	struct shm_pending pending[SHM_PENDING_MAX];
};

/* ---- the table of requests (shm_setup.c) ---- */

/* Closes this process's copies of P's descriptors, without an answer, and frees its slot. */
void shm_pending_drop(struct shm_listener *l, struct shm_pending *p);

/* Keeps door connection C in a free slot. Returns the slot, or NULL (C closed: refused). */
struct shm_pending *shm_pending_add(struct shm_listener *l, int c);

/*
 * Reads P's request (or FORWARD) if it came. Returns 0, -EAGAIN when none came yet, or
 * another -errno when P was dropped (a message that lies, a connector that left).
 */
int shm_pending_read(struct shm_listener *l, struct shm_pending *p);

/* Answers P's connector: STATUS 0 accepts, else it is the errno of the refusal. */
void shm_pending_answer(struct shm_pending *p, int status);

/* ---- a door shared by forked workers (shm_door_shared.c) ---- */

/* Registers the fork counter (once) and returns the forks so far: a listener keeps it. */
unsigned shm_door_watch_forks(void);

/* Whether other processes may take connectors off L's door too. */
bool shm_door_is_shared(const struct shm_listener *l);

/*
 * The request of the connection from PEER on a shared door: drains (putting back what is
 * not ours) and waits while another drain may hold it. Returns the slot, or NULL (TCP).
 */
struct shm_pending *shm_door_shared_find(struct shm_listener *l, const struct door_address *peer);

#endif
