/* The driver of fork_sched: forks a run's processes, tells each what to do over its pipe, checks every answer against the plan, and winds the run down without leaving anything behind. */
#include "sched_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault_util.h"
#include "fork_util.h"
#include "sched_roles.h"

/* Beyond a process's own stall limit, how long the driver waits for any answer before calling it a hang. */
#define SCHED_HANG_MARGIN_MS 3000
#define SCHED_FAILURES_MAX 8

/* What the driver knows of one process of the run. */
struct sched_proc_state {
	pid_t pid;
	int pidfd;      /* -1 when unknown or closed */
	int command_fd; /* the driver's write end */
	bool started, ready, dead, killed, exiting, closed;
	bool touched[SCHED_TURNS_MAX];
	bool done[SCHED_TURNS_MAX + 1]; /* by turn + 1; [0]: SCHED_CMD_TO_END */
	struct sched_result result[SCHED_TURNS_MAX + 1];
	int status; /* wait status, once reaped (-1 before) */
};

struct sched_run {
	const struct sched_plan *plan;
	const struct sched_options *options;
	struct sched_proc_state procs[SCHED_PROCS];
	int event_read;
	unsigned port, client_port;
	int failures;
	char failure[SCHED_FAILURES_MAX][256];
	bool aborted; /* the schedule stops: wind down */
	bool hung;
	bool forked;
	bool events_gone; /* every process's end of the event pipe is closed */
	uint64_t sent, received; /* where the last owner left the two streams */
};

/* ---- reporting ------------------------------------------------------------------------- */

static void sched_fail(struct sched_run *run, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

/* Records a failed check of the run; the schedule stops there. */
static void sched_fail(struct sched_run *run, const char *format, ...)
{
	va_list ap;

	if (run->failures < SCHED_FAILURES_MAX) {
		va_start(ap, format);
		vsnprintf(run->failure[run->failures], sizeof run->failure[0], format, ap);
		va_end(ap);
	}
	run->failures++;
	run->aborted = true;
}

static void sched_note(const struct sched_run *run, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

static void sched_note(const struct sched_run *run, const char *format, ...)
{
	va_list ap;

	if (!run->options->verbose)
		return;
	printf("seed %llu:   ", (unsigned long long)run->plan->seed);
	va_start(ap, format);
	vprintf(format, ap);
	va_end(ap);
	printf("\n");
}

/* A result as stream_result_print says it, without its newline. */
static const char *sched_describe(const struct sched_result *packed, char *buf, size_t size)
{
	struct stream_result result;
	FILE *f = fmemopen(buf, size, "w");

	if (f == NULL) {
		snprintf(buf, size, "outcome %d", packed->outcome);
		return buf;
	}
	sched_result_unpack(&result, packed);
	stream_result_print(f, "", &result);
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static const char *sched_name(enum sched_proc proc)
{
	return sched_proc_name(proc);
}

static void sched_describe_status(int status, char *buf, size_t size)
{
	if (status < 0)
		snprintf(buf, size, "status unknown");
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
}

/* ---- talking to the processes ---------------------------------------------------------- */

static void sched_command(struct sched_run *run, enum sched_proc proc, enum sched_command_type type,
			  int turn)
{
	struct sched_proc_state *st = &run->procs[proc];
	struct sched_command cmd = { .type = type, .turn = turn, .sent = run->sent,
				     .received = run->received };

	if (st->dead || st->command_fd < 0)
		return;
	/* A process that died meanwhile makes this fail with EPIPE; its death is seen anyway. */
	if (write(st->command_fd, &cmd, sizeof cmd) < 0 && errno != EPIPE)
		sched_fail(run, "command to the %s: %s", sched_name(proc), fault_errno_name(errno));
}

/* Checks a process's result against the plan (turn >= 0) or against what a survivor may see. */
static void sched_check_result(struct sched_run *run, enum sched_proc proc, int turn,
			       const struct sched_result *r)
{
	const struct sched_plan *plan = run->plan;
	bool last = turn == plan->turns - 1;
	struct stream_result result;
	char text[200];

	sched_result_unpack(&result, r);
	if (result.outcome == STREAM_OK) {
		const struct sched_turn *t = turn >= 0 ? &plan->turn[turn] : NULL;
		uint64_t want_sent, want_received;

		if (t == NULL)
			return;
		if (proc == SCHED_PEER) {
			want_sent = last ? plan->peer_total : result.sent; /* it sends at its own pace */
			want_received = last ? plan->server_total : t->peer_received;
		} else {
			want_sent = t->owner_sent;
			want_received = t->owner_received;
		}
		if (result.sent != want_sent || result.received != want_received)
			sched_fail(run, "%s t%d: reached sent=%llu received=%llu, the plan says %llu and %llu",
				   sched_name(proc), turn, (unsigned long long)result.sent,
				   (unsigned long long)result.received,
				   (unsigned long long)want_sent, (unsigned long long)want_received);
		return;
	}
	sched_describe(r, text, sizeof text);
	if (run->plan->victim != SCHED_VICTIM_NONE && fork_result_is_clean_end(&result)) {
		/* With a victim the streams may end early, but only this way. */
		sched_note(run, "%s t%d: %s (a clean end)", sched_name(proc), turn, text);
		run->aborted = true;
		return;
	}
	sched_fail(run, "%s t%d: %s", sched_name(proc), turn, text);
}

static void sched_on_event(struct sched_run *run, const struct sched_event *ev)
{
	enum sched_proc proc = ev->proc >= 0 && ev->proc < SCHED_PROCS ? (enum sched_proc)ev->proc
								       : SCHED_PEER;
	struct sched_proc_state *st = &run->procs[proc];
	int slot = ev->turn + 1;
	char text[200];

	if (slot < 0 || slot > SCHED_TURNS_MAX)
		slot = 0;
	switch (ev->type) {
	case SCHED_EV_PORT:
		run->port = (unsigned)ev->value;
		break;
	case SCHED_EV_READY:
		st->ready = true;
		if (proc == SCHED_PEER)
			run->client_port = (unsigned)ev->value;
		break;
	case SCHED_EV_FORKED:
		run->forked = true;
		run->procs[SCHED_CHILD].pid = (pid_t)ev->value;
		run->procs[SCHED_CHILD].started = true;
		break;
	case SCHED_EV_TOUCHED:
		if (ev->turn >= 0 && ev->turn < SCHED_TURNS_MAX)
			st->touched[ev->turn] = true;
		sched_note(run, "%s t%d: first touch returned %llu: %s", sched_name(proc), ev->turn,
			   (unsigned long long)ev->value, sched_describe(&ev->result, text, sizeof text));
		break;
	case SCHED_EV_TURN_DONE:
	case SCHED_EV_PEER_DONE:
		st->done[slot] = true;
		st->result[slot] = ev->result;
		sched_note(run, "%s t%d done: %s", sched_name(proc), ev->turn,
			   sched_describe(&ev->result, text, sizeof text));
		sched_check_result(run, proc, ev->turn, &ev->result);
		break;
	case SCHED_EV_CLOSED:
		st->closed = true;
		sched_note(run, "%s closed: %d mapping(s), %d fd(s) of %s (before: %d, %d)",
			   sched_name(proc), ev->count.maps, ev->count.fds, FORK_MEMFD_NAME,
			   ev->baseline.maps, ev->baseline.fds);
		if (!ev->released)
			sched_fail(run, "%s leaked shared memory: %d mapping(s) and %d fd(s) of %s 2 s after its close (before the connection: %d and %d)",
				   sched_name(proc), ev->count.maps, ev->count.fds, FORK_MEMFD_NAME,
				   ev->baseline.maps, ev->baseline.fds);
		break;
	case SCHED_EV_EXITING:
		st->exiting = true;
		break;
	case SCHED_EV_FAILED:
		sched_fail(run, "%s: %s", sched_name(proc), ev->text);
		break;
	default:
		sched_fail(run, "unknown event %u from pid %d", ev->type, ev->pid);
	}
}

/* Reaps PROC if it is the driver's child (the parent, the peer, or an orphaned child). */
static void sched_reap(struct sched_proc_state *st)
{
	int status;

	if (st->status < 0 && st->pid > 0 && waitpid(st->pid, &status, WNOHANG) == st->pid)
		st->status = status;
}

static void sched_on_death(struct sched_run *run, enum sched_proc proc)
{
	struct sched_proc_state *st = &run->procs[proc];
	char status[80];

	st->dead = true;
	close(st->pidfd);
	st->pidfd = -1;
	sched_reap(st);
	if (st->killed || st->exiting)
		return;
	sched_describe_status(st->status, status, sizeof status);
	sched_fail(run, "the %s (pid %ld) died unasked (%s)", sched_name(proc), (long)st->pid, status);
}

/* Waits up to TIMEOUT_MS for events or deaths, and takes them in. */
static void sched_poll(struct sched_run *run, int timeout_ms)
{
	struct pollfd pfd[1 + SCHED_PROCS];
	enum sched_proc who[1 + SCHED_PROCS];
	int n = 1;

	/* Once every writer is gone the pipe only says POLLHUP: leave it out (a negative fd). */
	pfd[0].fd = run->events_gone ? -1 : run->event_read;
	pfd[0].events = POLLIN;
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		if (run->procs[proc].pidfd < 0)
			continue;
		pfd[n].fd = run->procs[proc].pidfd;
		pfd[n].events = POLLIN;
		who[n++] = (enum sched_proc)proc;
	}
	if (poll(pfd, (nfds_t)n, timeout_ms) <= 0)
		return;
	/* Events first: a process's last words come before its death. */
	if (pfd[0].revents & POLLIN) {
		for (;;) {
			struct pollfd more = { .fd = run->event_read, .events = POLLIN };
			struct sched_event ev;

			if (read(run->event_read, &ev, sizeof ev) != (ssize_t)sizeof ev)
				break;
			sched_on_event(run, &ev);
			if (poll(&more, 1, 0) <= 0)
				break;
		}
	} else if (pfd[0].revents & POLLHUP) {
		run->events_gone = true;
	}
	for (int i = 1; i < n; i++) {
		if (pfd[i].revents == 0)
			continue;
		/* Take in what it wrote just before it died. */
		struct pollfd more = { .fd = run->event_read, .events = POLLIN };
		struct sched_event ev;

		while (poll(&more, 1, 0) > 0 && read(run->event_read, &ev, sizeof ev) == (ssize_t)sizeof ev)
			sched_on_event(run, &ev);
		sched_on_death(run, who[i]);
	}
}

typedef bool (*sched_ready_fn)(const struct sched_run *run, int arg);

/* Waits until READY says so. Returns false (a hang, recorded) when it did not in time. */
static bool sched_wait(struct sched_run *run, sched_ready_fn ready, int arg, const char *what)
{
	double deadline = fault_now_ms() + run->options->stall_ms + SCHED_HANG_MARGIN_MS;

	while (!ready(run, arg)) {
		if (run->hung)
			return false;
		if (fault_now_ms() > deadline) {
			sched_fail(run, "hang: no answer within %d ms while waiting for %s",
				   run->options->stall_ms + SCHED_HANG_MARGIN_MS, what);
			run->hung = true;
			return false;
		}
		sched_poll(run, 20);
	}
	return true;
}

static bool sched_ready_port(const struct sched_run *run, int arg)
{
	(void)arg;
	return run->port != 0 || run->procs[SCHED_PARENT].dead || run->aborted;
}

static bool sched_ready_up(const struct sched_run *run, int proc)
{
	return run->procs[proc].ready || run->procs[proc].dead || run->aborted;
}

static bool sched_ready_forked(const struct sched_run *run, int arg)
{
	(void)arg;
	return run->forked || run->procs[SCHED_PARENT].dead || run->aborted;
}

/* Dead, or never started (the child before the fork). */
static bool sched_ready_dead(const struct sched_run *run, int proc)
{
	const struct sched_proc_state *st = &run->procs[proc];

	if (!st->started || st->dead)
		return true;
	/* Without a pidfd (pidfd_open failed): gone once even its zombie is. */
	return st->pidfd < 0 && kill(st->pid, 0) < 0 && errno == ESRCH;
}

static bool sched_ready_closed(const struct sched_run *run, int proc)
{
	return run->procs[proc].closed || run->procs[proc].dead;
}

static bool sched_ready_to_end(const struct sched_run *run, int proc)
{
	return run->procs[proc].done[0] || run->procs[proc].dead;
}

/* The owner of turn K has answered (or died); the peer too, unless the owner's turn failed. */
static bool sched_ready_turn(const struct sched_run *run, int k)
{
	const struct sched_proc_state *owner = &run->procs[run->plan->turn[k].owner];
	const struct sched_proc_state *peer = &run->procs[SCHED_PEER];
	bool owner_resolved = owner->done[k + 1] || owner->dead;

	if (!owner_resolved)
		return false;
	if (owner->dead || owner->result[k + 1].outcome != STREAM_OK)
		return true;
	return peer->done[k + 1] || peer->dead;
}

static bool sched_ready_touched(const struct sched_run *run, int k)
{
	const struct sched_proc_state *owner = &run->procs[run->plan->turn[k].owner];

	return owner->touched[k] || owner->done[k + 1] || owner->dead;
}

/* ---- the schedule ---------------------------------------------------------------------- */

static void sched_sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void sched_kill(struct sched_run *run, enum sched_proc proc)
{
	struct sched_proc_state *st = &run->procs[proc];

	if (st->dead || st->pid <= 0)
		return;
	st->killed = true;
	kill(st->pid, SIGKILL);
}

/* Carries out E (a fate); with WAIT, until it has taken effect. */
static void sched_apply(struct sched_run *run, const struct sched_event_plan *e, bool wait)
{
	struct sched_proc_state *st = &run->procs[e->who];

	if (st->dead)
		return;
	sched_note(run, "%s %s (t%d)", sched_name(e->who), sched_fate_name(e->fate), e->turn);
	switch (e->fate) {
	case SCHED_FATE_KEEP:
		break;
	case SCHED_FATE_CLOSE:
		sched_command(run, e->who, SCHED_CMD_CLOSE, e->turn);
		if (wait)
			sched_wait(run, sched_ready_closed, e->who, "a close");
		break;
	case SCHED_FATE_EXIT:
		sched_command(run, e->who, SCHED_CMD_EXIT, e->turn);
		if (wait)
			sched_wait(run, sched_ready_dead, e->who, "an exit");
		break;
	case SCHED_FATE_KILL:
		sched_kill(run, e->who);
		/* The victim child or peer takes the rest of the streams with it: wind down after the turn. */
		if (e == &run->plan->kill)
			run->aborted = true;
		if (wait)
			sched_wait(run, sched_ready_dead, e->who, "a SIGKILLed process to end");
		break;
	}
}

/* The plan's events around the go of turn K: those due before it (BEFORE), or those during it. */
static void sched_events(struct sched_run *run, int k, bool before)
{
	const struct sched_event_plan *events[2] = { &run->plan->bystander,
						     run->plan->has_kill ? &run->plan->kill : NULL };

	for (int i = 0; i < 2; i++) {
		const struct sched_event_plan *e = events[i];

		if (e == NULL || e->turn != k || (e->when == SCHED_WHEN_BEFORE) != before)
			continue;
		if (e->when == SCHED_WHEN_AFTER_TOUCH)
			sched_wait(run, sched_ready_touched, k, "the first touch");
		else if (e->when == SCHED_WHEN_DELAY)
			sched_sleep_us(e->delay_us);
		sched_apply(run, e, before);
	}
}

/* Turn K: the peer's share and the owner's go, the events during it, and their answers. */
static void sched_turn(struct sched_run *run, int k)
{
	enum sched_proc owner = run->plan->turn[k].owner;
	const struct sched_result *r;

	if (k > 0)
		sched_events(run, k, true);
	if (run->aborted)
		return;
	if (run->procs[owner].dead) {
		sched_fail(run, "the %s is gone before its turn t%d", sched_name(owner), k);
		return;
	}
	sched_command(run, SCHED_PEER, SCHED_CMD_PEER_TURN, k);
	sched_command(run, owner, SCHED_CMD_GO, k);
	if (k > 0)
		sched_events(run, k, false);
	if (!sched_wait(run, sched_ready_turn, k, "a turn to end"))
		return;
	r = &run->procs[owner].result[k + 1];
	if (run->procs[owner].done[k + 1] && r->outcome == STREAM_OK) {
		run->sent = r->sent;
		run->received = r->received;
	}
}

/* Turn 0 and the fork. */
static void sched_first_turn_and_fork(struct sched_run *run)
{
	struct sched_proc_state *child = &run->procs[SCHED_CHILD];

	sched_turn(run, 0);
	if (run->aborted)
		return;
	sched_command(run, SCHED_PARENT, SCHED_CMD_FORK, 0);
	if (!sched_wait(run, sched_ready_forked, 0, "the fork") || !run->forked)
		return;
	child->pidfd = fork_pidfd_open(child->pid);
	if (child->pidfd < 0)
		sched_fail(run, "pidfd_open(child %ld): %s", (long)child->pid,
			   fault_errno_name(-child->pidfd));
}

/*
 * After the schedule or its abort: the server side closes and exits; then, when a victim
 * ended the streams early, a live peer runs to the end to show how its streams end without
 * the server (EOF, ECONNRESET or EPIPE, and no hang); then the peer closes and exits. After
 * a hang, or for a process that does not exit, SIGKILL.
 */
static void sched_wind_down(struct sched_run *run)
{
	struct sched_proc_state *peer = &run->procs[SCHED_PEER];
	double deadline;

	for (int proc = SCHED_PARENT; proc <= SCHED_CHILD && !run->hung; proc++) {
		sched_command(run, (enum sched_proc)proc, SCHED_CMD_FINISH, -1);
		sched_wait(run, sched_ready_dead, proc, "the server side to close and exit");
	}
	if (!run->hung && run->aborted && run->plan->victim != SCHED_VICTIM_NONE && !peer->dead) {
		sched_command(run, SCHED_PEER, SCHED_CMD_TO_END, -1);
		sched_wait(run, sched_ready_to_end, SCHED_PEER, "the peer to run to the end");
	}
	if (!run->hung) {
		sched_command(run, SCHED_PEER, SCHED_CMD_FINISH, -1);
		sched_wait(run, sched_ready_dead, SCHED_PEER, "the peer to close and exit");
	}
	deadline = fault_now_ms() + 3000;
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		struct sched_proc_state *st = &run->procs[proc];

		if (sched_ready_dead(run, proc))
			continue;
		if (!run->hung)
			sched_fail(run, "the %s (pid %ld) did not exit", sched_name((enum sched_proc)proc),
				   (long)st->pid);
		st->killed = true;
		kill(st->pid, SIGKILL);
	}
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		while (!sched_ready_dead(run, proc) && run->procs[proc].pidfd >= 0 &&
		       fault_now_ms() < deadline)
			sched_poll(run, 20);
	}
}

/* Collects the ended processes (the child, orphaned by its parent, comes to the driver) and checks how they ended. */
static void sched_collect(struct sched_run *run)
{
	double deadline = fault_now_ms() + 3000;

	for (;;) {
		int status, pending = 0;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		for (int proc = 0; proc < SCHED_PROCS; proc++) {
			struct sched_proc_state *st = &run->procs[proc];

			if (pid > 0 && st->pid == pid)
				st->status = status;
			if (st->started && st->status < 0)
				pending++;
		}
		if (pid < 0 || (pending == 0 && pid == 0) || fault_now_ms() > deadline)
			break;
		if (pid == 0)
			fault_sleep_ms(2);
	}
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		struct sched_proc_state *st = &run->procs[proc];
		char status[80];

		if (!st->started || st->killed || st->status < 0)
			continue;
		if (WIFSIGNALED(st->status) || WEXITSTATUS(st->status) != 0) {
			sched_describe_status(st->status, status, sizeof status);
			sched_fail(run, "the %s (pid %ld) ended with %s", sched_name((enum sched_proc)proc),
				   (long)st->pid, status);
		}
	}
}

/* Forks a process of the run: it closes the driver's ends and plays ROLE. */
static pid_t sched_spawn(struct sched_run *run, const struct sched_role_args *args, int command_write[],
			 void (*role)(const struct sched_role_args *))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	close(run->event_read);
	for (int proc = 0; proc < SCHED_PROCS; proc++)
		close(command_write[proc]);
	role(args);
	_exit(1);
}

bool sched_run_plan(const struct sched_plan *plan, const struct sched_options *options)
{
	struct sched_run run = { .plan = plan, .options = options };
	struct sched_role_args args = { .plan = plan, .stall_ms = options->stall_ms };
	int event_pipe[2], command_pipe[SCHED_PROCS][2], command_write[SCHED_PROCS];
	struct fork_memfd_count mine;
	char prefix[64];

	snprintf(prefix, sizeof prefix, "seed %llu: ", (unsigned long long)plan->seed);
	sched_plan_print(stdout, prefix, plan);
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		run.procs[proc].pidfd = run.procs[proc].command_fd = -1;
		run.procs[proc].status = -1;
	}
	if (pipe2(event_pipe, O_CLOEXEC) < 0) {
		printf("%sFAIL: pipe: %s\n", prefix, strerror(errno));
		return false;
	}
	for (int proc = 0; proc < SCHED_PROCS; proc++) {
		if (pipe2(command_pipe[proc], O_CLOEXEC) < 0) {
			printf("%sFAIL: pipe: %s\n", prefix, strerror(errno));
			return false;
		}
		args.pipes.command_read[proc] = command_pipe[proc][0];
		command_write[proc] = run.procs[proc].command_fd = command_pipe[proc][1];
	}
	run.event_read = event_pipe[0];
	args.pipes.event_write = event_pipe[1];

	run.procs[SCHED_PARENT].pid = sched_spawn(&run, &args, command_write, sched_role_server);
	run.procs[SCHED_PARENT].started = run.procs[SCHED_PARENT].pid > 0;
	run.procs[SCHED_PARENT].pidfd = fork_pidfd_open(run.procs[SCHED_PARENT].pid);
	if (sched_wait(&run, sched_ready_port, 0, "the server's port") && run.port != 0) {
		args.port = run.port;
		run.procs[SCHED_PEER].pid = sched_spawn(&run, &args, command_write, sched_role_peer);
		run.procs[SCHED_PEER].started = run.procs[SCHED_PEER].pid > 0;
		run.procs[SCHED_PEER].pidfd = fork_pidfd_open(run.procs[SCHED_PEER].pid);
	}
	/* The driver's copies of the processes' ends: the child gets its own from the parent. */
	close(event_pipe[1]);
	for (int proc = 0; proc < SCHED_PROCS; proc++)
		close(command_pipe[proc][0]);
	if (run.procs[SCHED_PEER].started &&
	    sched_wait(&run, sched_ready_up, SCHED_PARENT, "the connection") &&
	    sched_wait(&run, sched_ready_up, SCHED_PEER, "the connection") && !run.aborted) {
		sched_first_turn_and_fork(&run);
		for (int k = 1; k < plan->turns && !run.aborted; k++)
			sched_turn(&run, k);
	}
	sched_wind_down(&run);
	sched_collect(&run);
	for (int proc = 0; proc < SCHED_PROCS; proc++)
		close(command_write[proc]);
	close(run.event_read);
	if (fork_count_memfd(0, &mine) == 0 && (mine.maps != 0 || mine.fds != 0))
		sched_fail(&run, "the driver holds %d mapping(s) and %d fd(s) of %s", mine.maps,
			   mine.fds, FORK_MEMFD_NAME);

	printf("%s%s conn=127.0.0.1:%u->127.0.0.1:%u\n", prefix, run.failures == 0 ? "ok" : "FAIL",
	       run.client_port, run.port);
	for (int i = 0; i < run.failures && i < SCHED_FAILURES_MAX; i++)
		printf("%s  %s\n", prefix, run.failure[i]);
	if (run.failures > SCHED_FAILURES_MAX)
		printf("%s  ... %d failures in all\n", prefix, run.failures);
	return run.failures == 0;
}

