/* A door shared by pre-forked workers: every request a drain takes for another worker's connection goes back on the door at once (FORWARD), and a board tells an acceptor whether its request may still come. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "door.h"
#include "futex_sem.h"
#include "libc.h"
#include "shm_listener.h"
#include "shm_private.h"

/*
 * Forks of this process: the program's libc runs setup_count_fork before each one (in the
 * parent, so the child's copy is counted too). A listener compares it with the count when
 * its door was opened to know that another process may have the door.
 */
static _Atomic unsigned setup_forks;
static atomic_bool setup_forks_counted; /* the hook is registered */

static void setup_count_fork(void)
{
	atomic_fetch_add_explicit(&setup_forks, 1, memory_order_relaxed);
}

unsigned shm_door_watch_forks(void)
{
	if (vi_libc.register_atfork != NULL && !atomic_exchange(&setup_forks_counted, true) &&
	    vi_libc.register_atfork(setup_count_fork, NULL, NULL, NULL) != 0)
		atomic_store(&setup_forks_counted, false);
	return atomic_load_explicit(&setup_forks, memory_order_relaxed);
}

/*
 * Whether other processes may take connectors off L's door too: a fork since it was opened
 * gave the child the door (the parent cannot tell whether the child keeps it, nor the child
 * whether the parent does). One load on the accept path of a program that never forks.
 * Without the fork hook (a program whose libc was not found) only the child can tell.
 */
bool shm_door_is_shared(const struct shm_listener *l)
{
	if (atomic_load_explicit(&setup_forks, memory_order_relaxed) != l->forks)
		return true;
	return !atomic_load_explicit(&setup_forks_counted, memory_order_relaxed) &&
	       getpid() != l->pid;
}

/*
 * ---- a shared door ----
 *
 * Once the process has forked, its door may be drained by others, and a request is not
 * kept where the TCP connection is not: every drain (setup_shared_drain) puts back on the
 * door, at once, each request it took for another connection. It cannot keep them for
 * later: a worker that goes on to serve its connection may not drain again for a long time.
 * A drain also stops as soon as it has its own request, leaving the rest on the door.
 *
 * An acceptor whose request is not on the door knows where it is: the request was sent
 * before the connector's SYN, so it was on the door before accept() returned, and since
 * then only a drain can have taken it, and that drain puts it back before it ends. The
 * board (a page shared by every process with the door) tells the acceptor where to look:
 *
 *   - it lists the drains going on, each with its pid and what it holds that another
 *     acceptor may be waiting for: connections whose requests it has not read yet (an
 *     "unknown episode", odd, numbered from when the first of them left the door until
 *     none is left), or the request it is putting back (its source's key, even);
 *   - it logs the source of each request a drain puts back (or turns down), before the
 *     drain lets go of it.
 *
 * So the acceptor waits while an unknown episode that was going on when its own drain
 * ended goes on, or while a drain is putting its request back, and drains again when the
 * log shows its request put back since its own drain began; when none of these holds, the
 * peer has no request (it does not run viaudit) and the connection stays on TCP at once.
 * An episode or a drain begun after its own drain can only take from the door what another
 * drain put back, which the log tells. The waiter reads the drains first and the log
 * second: a drain that let go of its request in between logged it first. A drain whose
 * process died does not count. Only its own request makes a waiter drain again: two
 * waiters passing a third connection's request to and fro would otherwise keep each other
 * draining.
 *
 * A drain may also take a connector's door connection before the request is on it (the
 * connector is between its door connect and its send). It waits for it a little
 * (SHM_REQUEST_WAIT_MS), then closes it; a connector that slow connects to the door again
 * before it sends (setup_send_request), so that no request is left where nobody looks.
 */

/* A source address as the board names it: a 64-bit hash (FNV-1a), even and never zero. */
static uint64_t setup_source_key(const struct door_address *a)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t bytes[4 + 2 + 4 + 16];
	uint32_t family = (uint32_t)a->family;
	memcpy(bytes, &family, 4);
	memcpy(bytes + 4, &a->port, 2);
	memcpy(bytes + 6, &a->scope_id, 4);
	memcpy(bytes + 10, a->addr, 16);
	for (size_t i = 0; i < sizeof(bytes); i++)
		h = (h ^ bytes[i]) * 0x100000001b3ull;
	return (h | 2) & ~1ull;
}

/* Logs that a drain put back (or, REFUSED, turned down) the request from SOURCE. */
static void setup_board_log(struct shm_door_board *b, const struct door_address *source,
			    bool refused)
{
	uint32_t n = atomic_fetch_add(&b->logged, 1);
	atomic_store(&b->log[n % SHM_FORWARD_LOG], setup_source_key(source) | refused);
}

/*
 * What drains did since BEFORE (the log's count when our drain began) with the request
 * whose source has KEY: -1 turned it down, 1 may have put it back on the door (it is in the
 * log, or the log has been overwritten since), 0 neither.
 */
static int setup_board_news(struct shm_door_board *b, uint32_t before, uint64_t key)
{
	uint32_t n = atomic_load(&b->logged) - before;
	if (n > SHM_FORWARD_LOG)
		return 1;
	int news = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t entry = atomic_load(&b->log[(before + k) % SHM_FORWARD_LOG]);
		if ((entry & ~1ull) == key)
			news = (entry & 1) ? -1 : 1;
	}
	return news;
}

/* Lists this process's drain on the board. Returns its slot, or -1 (counted blind). */
static int setup_board_enter(struct shm_door_board *b, pid_t self)
{
	uint32_t number = atomic_fetch_add(&b->drains, 1);
	uint64_t me = (uint64_t)(uint32_t)self << 32 | number;
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		uint64_t none = 0;
		if (atomic_compare_exchange_strong(&b->drainers[i], &none, me))
			return i;
	}
	atomic_fetch_add(&b->crowded, 1);
	return -1;
}

/* Ends the drain listed in SLOT, and wakes the acceptors waiting for a drain to end. */
static void setup_board_leave(struct shm_door_board *b, int slot)
{
	if (slot >= 0) {
		atomic_store(&b->holding[slot], 0);
		atomic_store(&b->drainers[slot], 0);
	} else {
		atomic_fetch_sub(&b->crowded, 1);
	}
	/* Partner: the fence in futex_sem_prepare() of shm_door_shared_find's wait. */
	if (futex_sem_waiters(&b->drain_end) & FUTEX_SEM_COUNT_MASK)
		futex_sem_post(&b->drain_end);
}

/* The drains going on now and what they hold, into RUNNING and HOLDING (0: none). */
static void setup_board_running(struct shm_door_board *b, uint64_t running[SHM_DRAINERS_MAX],
				uint64_t holding[SHM_DRAINERS_MAX])
{
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		running[i] = atomic_load(&b->drainers[i]);
		holding[i] = atomic_load(&b->holding[i]);
	}
}

/*
 * Whether one of the drains in RUNNING still goes on in the unknown episode it was in
 * (HOLDING), or holds the request whose source has KEY (a drain counted blind may); a dead
 * process's slot is freed.
 */
static bool setup_board_busy(struct shm_door_board *b, const uint64_t running[SHM_DRAINERS_MAX],
			     const uint64_t holding[SHM_DRAINERS_MAX], uint64_t key)
{
	bool busy = atomic_load(&b->crowded) > 0;
	for (int i = 0; i < SHM_DRAINERS_MAX; i++) {
		uint64_t drain = running[i];
		if (drain == 0 || atomic_load(&b->drainers[i]) != drain)
			continue;
		uint64_t now = atomic_load(&b->holding[i]);
		if (now != key && !((now & 1) && now == holding[i]))
			continue;
		if (kill((pid_t)(drain >> 32), 0) < 0 && errno == ESRCH)
			atomic_compare_exchange_strong(&b->drainers[i], &drain, 0);
		else
			busy = true;
	}
	return busy;
}

/* One drain of a shared door, as it goes. */
struct setup_drain {
	struct shm_door_board *board;
	int slot;                        /* its listing on the board, or -1 */
	bool taking;                     /* taking a connection off the door */
	unsigned unknown;                /* connections held whose request has not come */
	uint64_t shown;                  /* what the board shows it holds */
	uint64_t episodes;               /* unknown episodes so far */
	const struct door_address *peer; /* the accepted connection's peer */
	struct shm_pending *mine;        /* its request, once found */
	bool wrapped;                    /* one it forwarded came back: the door was gone through */
	unsigned nforwarded;             /* the first tokens of the first ones it forwarded */
	uint64_t forwarded[SHM_DRAIN_REMEMBERED];
};

/*
 * Shows on the board what drain D holds: an unknown episode while it takes a connection or
 * holds one without its request, else FORWARDING (a request it puts back) or nothing. An
 * acceptor may be waiting for what it showed before: it is woken when that ends.
 */
static void setup_drain_show(struct setup_drain *d, const struct door_address *forwarding)
{
	if (d->slot < 0)
		return;
	uint64_t holding;
	if (d->taking || d->unknown > 0)
		holding = (d->shown & 1) ? d->shown : (++d->episodes << 1) | 1;
	else
		holding = forwarding != NULL ? setup_source_key(forwarding) : 0;
	if (holding == d->shown)
		return;
	atomic_store(&d->board->holding[d->slot], holding);
	/* Partner: the fence in futex_sem_prepare() of shm_door_shared_find's wait. */
	if (d->shown != 0 && (futex_sem_waiters(&d->board->drain_end) & FUTEX_SEM_COUNT_MASK))
		futex_sem_post(&d->board->drain_end);
	d->shown = holding;
}

/*
 * Puts P's request back on the door for the other processes that share it, with the
 * connector's door connection as the fourth descriptor, and forgets it here. A request gone
 * stale (past the TTL, or its connector gone) is dropped instead. Returns 1 (forwarded), 0
 * (dropped), or -errno when it could not be sent (P stays: sent again at the next accept).
 */
static int setup_forward(struct shm_listener *l, struct shm_pending *p)
{
	/* The connector sends nothing before its answer: anything to read is its end. */
	struct pollfd gone = { .fd = p->door_fd, .events = POLLIN };
	if (shm_now_ns() - p->since_ns > SHM_PENDING_TTL_NS || poll(&gone, 1, 0) > 0) {
		shm_pending_drop(l, p);
		return 0;
	}
	struct door_message msg = { .type = DOOR_MESSAGE_FORWARD, .request = p->request };
	int fds[DOOR_FORWARD_FDS];
	memcpy(fds, p->fds, sizeof(p->fds));
	fds[DOOR_FD_CONNECTOR_DOOR] = p->door_fd;
	int r = -EPIPE;
	/* A drain that took our connection and saw nothing on it for long closed it: once more. */
	for (int attempt = 0; attempt < 2 && (r == -EPIPE || r == -ECONNRESET); attempt++) {
		int c = door_connect_listener(l->door_fd);
		if (c < 0)
			return c;
		r = door_send(c, &msg, fds, DOOR_FORWARD_FDS);
		/* The message stays queued on the door after this close, descriptors and all. */
		close(c);
	}
	if (r < 0)
		return r;
	setup_board_log(l->board, &p->request.source, false);
	shm_pending_drop(l, p); /* our copies: the message holds its own */
	return 1;
}

/*
 * P in drain D: reads its request if it has none yet (when WAIT, waiting for it until
 * SHM_REQUEST_WAIT_MS after P came off the door), then keeps it as D's own if it is the
 * peer's, else forwards it. A P without its request is counted in D->unknown.
 */
static void setup_shared_sort(struct shm_listener *l, struct shm_pending *p,
			      struct setup_drain *d, bool wait)
{
	if (p->door_fd < 0 || p == d->mine)
		return;
	if (!p->have_request) {
		long long left = p->since_ns + SHM_REQUEST_WAIT_MS * 1000000LL - shm_now_ns();
		if (wait && left > 0)
			door_wait(p->door_fd, POLLIN, (int)(left / 1000000) + 1);
		int r = shm_pending_read(l, p);
		if (r == -EAGAIN && wait) {
			/*
			 * Too late: its connector connects again (SHM_REQUEST_LATE_MS) or fails over
			 * to TCP. Shutting our reading side first makes its send fail from now on,
			 * so a message sent just before is read here, not lost with the close.
			 */
			int carrier = p->door_fd;
			shutdown(carrier, SHUT_RD);
			r = shm_pending_read(l, p);
			if (r == 0 && p->door_fd == carrier) {
				/* A REQUEST on a connection that can no longer carry the session. */
				setup_board_log(l->board, &p->request.source, true);
				shm_pending_answer(p, ETIMEDOUT);
				shm_pending_drop(l, p);
				r = -ETIMEDOUT;
			}
		}
		if (r == -EAGAIN)
			return; /* not WAIT, and its request still has not come: kept, counted */
		d->unknown--;
		if (r < 0) {
			setup_drain_show(d, NULL);
			return; /* dropped */
		}
	}
	if (d->mine == NULL && door_address_equal(&p->request.source, d->peer)) {
		d->mine = p;
		setup_drain_show(d, NULL);
		return;
	}
	/*
	 * The door is first in, first out, and a forward goes back in at its end: meeting again
	 * a request this drain forwarded means everything that was on the door when it went
	 * back (by us, or by a drain that took it after us) has been taken since, by us or by
	 * drains the board shows. Draining on would only pass the same requests round again.
	 */
	uint64_t token;
	memcpy(&token, p->request.token, sizeof(token));
	for (unsigned k = 0; k < d->nforwarded; k++)
		d->wrapped |= d->forwarded[k] == token;
	setup_drain_show(d, &p->request.source);
	if (setup_forward(l, p) > 0 && d->nforwarded < SHM_DRAIN_REMEMBERED)
		d->forwarded[d->nforwarded++] = token;
	setup_drain_show(d, NULL);
}

/*
 * One drain of a shared door: the requests this process holds (a forward that failed, a
 * connector whose request had not come), then connectors off the door until PEER's request
 * comes, the door is empty or gone through once, then a short wait for the requests of
 * connectors taken before they sent them. Returns PEER's request, or NULL.
 */
static struct shm_pending *setup_shared_drain(struct shm_listener *l,
					      const struct door_address *peer)
{
	struct setup_drain d = { .board = l->board, .peer = peer };
	d.slot = setup_board_enter(l->board, l->pid);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		d.unknown += l->pending[i].door_fd >= 0 && !l->pending[i].have_request;
	setup_drain_show(&d, NULL);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		setup_shared_sort(l, &l->pending[i], &d, false);
	/* Bounded as well by a count, should other drains keep taking our first forward. */
	for (size_t taken = 0; d.mine == NULL && !d.wrapped && taken < SHM_PENDING_MAX; taken++) {
		/* Shown before the connection leaves the door: see "a shared door" above. */
		d.taking = true;
		setup_drain_show(&d, NULL);
		int c = door_accept(l->door_fd);
		struct shm_pending *p = c < 0 ? NULL : shm_pending_add(l, c);
		d.unknown += p != NULL;
		d.taking = false;
		if (c < 0)
			break;
		if (p != NULL)
			setup_shared_sort(l, p, &d, false);
	}
	setup_drain_show(&d, NULL);
	for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
		if (l->pending[i].door_fd >= 0 && !l->pending[i].have_request)
			setup_shared_sort(l, &l->pending[i], &d, true);
	setup_board_leave(l->board, d.slot);
	return d.mine;
}

/* PEER's request on a shared door: drains, and waits while it may still come back. */
struct shm_pending *shm_door_shared_find(struct shm_listener *l,
					     const struct door_address *peer)
{
	pid_t self = getpid();
	if (l->pid != self) {
		/*
		 * A forked child's table is a copy of its parent's, which still holds (and will
		 * answer) those requests: only our copies of the descriptors go.
		 */
		for (size_t i = 0; i < SHM_PENDING_MAX && l->npending > 0; i++)
			shm_pending_drop(l, &l->pending[i]);
		l->pid = self;
	}
	struct shm_door_board *b = l->board;
	uint64_t key = setup_source_key(peer);
	long long deadline = shm_now_ns() + SHM_SHARED_WAIT_MS * 1000000LL;
	for (;;) {
		uint32_t before = atomic_load(&b->logged);
		struct shm_pending *p = setup_shared_drain(l, peer);
		if (p != NULL)
			return p;
		uint64_t running[SHM_DRAINERS_MAX], holding[SHM_DRAINERS_MAX];
		setup_board_running(b, running, holding);
		for (;;) {
			uint32_t seq = futex_sem_prepare(&b->drain_end);
			/* Drains first, the log second: see "a shared door" above. */
			bool busy = setup_board_busy(b, running, holding, key);
			int news = setup_board_news(b, before, key);
			long long left = deadline - shm_now_ns();
			if (left <= 0 || news != 0 || !busy) {
				futex_sem_cancel(&b->drain_end);
				if (left > 0 && news > 0)
					break; /* drain again */
				return NULL;
			}
			futex_sem_wait(&b->drain_end.seq, seq, left);
			futex_sem_cancel(&b->drain_end);
		}
	}
}
