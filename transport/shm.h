/* The same-host endpoint: a connection's bytes in a shared-memory ring pair, set up over the door. */
#ifndef VI_TRANSPORT_SHM_H
#define VI_TRANSPORT_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "door_message.h"
#include "shm_ring.h"

/* Knobs from the policy's `set` lines. */
struct shm_options {
	size_t ring_size;      /* bytes per direction, a power of two */
	long spin_us;          /* spin before sleeping; -1 = sized to the machine */
	bool allow_other_uids; /* door peers of other uids are accepted */
};

enum shm_state {
	SHM_PENDING,  /* connector: request sent, the listener's answer not read yet */
	SHM_ACTIVE,   /* bytes move through the rings */
	SHM_FALLBACK, /* the listener refused: bytes move through the kernel socket */
};

struct shm_handoff_record;
struct shm_session;

/* One end of a same-host connection. Lives inside struct vi_conn. */
struct shm_endpoint {
	enum shm_state state;
	int side;   /* enum shm_segment_side: which ring this side writes */
	void *base; /* the mapped segment in use (the rings) */
	size_t size;
	/* The fork handoff (shm_handoff.c): the first segment, kept for its session page. */
	void *session_base;
	struct shm_session *session;
	uint32_t epoch;                    /* the segment `base` is (0: the first) */
	uint32_t answered;                 /* the last epoch the peer asked for and was answered */
	struct shm_handoff_record *record; /* shared by this side's processes once it forked */
	int fork_fd;                       /* the program's fd for it at the last fork */
	int seg_fd;                        /* the memfd of `base` when a handoff here made it, else -1 */
	void *retired_base;                /* an old segment another thread may still look at */
	size_t retired_size;
	struct shm_ring tx, rx;
	atomic_flag tx_lock, rx_lock; /* one writer and one reader at a time */
	atomic_flag settle_lock;      /* one thread reads the listener's answer */
	int door_fd;                  /* connector, while pending: its door connection */
	int chan_fd;                  /* the session channel: the door connection, kept once set up */
	int wake_fd;                  /* this side's eventfd: the peer writes it to wake poll/epoll */
	int peer_wake_fd;             /* the peer's eventfd */
	struct door_request request;  /* connector: what it asked for */
	long spin_us;
	bool shut_rd;
	bool shut_wr;
	bool peer_gone;         /* the kernel socket closed without the ring being closed */
	bool reset_reported;    /* ECONNRESET was returned once: now reads see EOF, writes EPIPE */
	long long next_liveness_ns;
	long long pending_since_ns;   /* connector: when its request went out */
	unsigned long long bytes_in, bytes_out;
};

/* A routed listening socket's door and the requests that arrived on it. */
struct shm_listener;

#endif
