/* The server, forked child and peer of a fork_sched run: each does what the driver's commands say and reports back over the event pipe. */
#include "sched_roles.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "fault_util.h"

/* How long a close may take to release the segment it mapped. */
#define SCHED_RELEASE_MS 2000
/* How long the server waits for the peer's connection. */
#define SCHED_ACCEPT_MS 10000

/* One process of the run as it sees itself. */
struct sched_process {
	const struct sched_role_args *args;
	const struct sched_plan *plan;
	enum sched_proc proc;
	int command_fd;
	int sock; /* -1 once closed */
	struct fork_pump pump;
	struct fork_memfd_count baseline;
};

uint64_t sched_server_seed(const struct sched_plan *plan)
{
	return stream_server_seed(sched_peer_seed(plan));
}

uint64_t sched_peer_seed(const struct sched_plan *plan)
{
	return plan->seed * 0xd6e8feb86659fd93ull + 1;
}

void sched_result_pack(struct sched_result *out, const struct stream_result *in)
{
	memset(out, 0, sizeof *out);
	out->outcome = (int32_t)in->outcome;
	out->error = in->error;
	out->sent = in->sent;
	out->received = in->received;
	out->offset = in->offset;
	out->got = in->got;
	out->want = in->want;
	if (in->call != NULL)
		snprintf(out->call, sizeof out->call, "%s", in->call);
}

void sched_result_unpack(struct stream_result *out, const struct sched_result *in)
{
	memset(out, 0, sizeof *out);
	out->outcome = (enum stream_outcome)in->outcome;
	out->error = in->error;
	out->sent = in->sent;
	out->received = in->received;
	out->offset = in->offset;
	out->got = in->got;
	out->want = in->want;
	out->call = in->call;
}

/* Sends EV (this process's name and pid filled in); exits when the driver is gone. */
static void sched_report(struct sched_process *p, struct sched_event *ev)
{
	ssize_t n;

	ev->proc = (int32_t)p->proc;
	ev->pid = (int32_t)getpid();
	do
		n = write(p->args->pipes.event_write, ev, sizeof *ev);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof *ev)
		_exit(0);
}

static void sched_report_simple(struct sched_process *p, enum sched_event_type type, int turn,
				uint64_t value)
{
	struct sched_event ev;

	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.turn = turn;
	ev.value = value;
	sched_report(p, &ev);
}

static void sched_report_result(struct sched_process *p, enum sched_event_type type, int turn,
				uint64_t value, const struct stream_result *result)
{
	struct sched_event ev;

	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.turn = turn;
	ev.value = value;
	sched_result_pack(&ev.result, result);
	sched_report(p, &ev);
}

static void sched_report_failure(struct sched_process *p, const char *what, int error)
{
	struct sched_event ev;

	memset(&ev, 0, sizeof ev);
	ev.type = SCHED_EV_FAILED;
	snprintf(ev.text, sizeof ev.text, "%s: %s", what, fault_errno_name(error));
	sched_report(p, &ev);
	_exit(1);
}

/* Reads the next command; exits when the driver is gone. */
static void sched_read_command(struct sched_process *p, struct sched_command *cmd)
{
	ssize_t n;

	do
		n = read(p->command_fd, cmd, sizeof *cmd);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof *cmd)
		_exit(0);
}

/* Closes the socket and reports how much shared memory this process holds afterwards. */
static void sched_close(struct sched_process *p)
{
	struct sched_event ev;

	memset(&ev, 0, sizeof ev);
	close(p->sock);
	p->sock = -1;
	ev.type = SCHED_EV_CLOSED;
	ev.released = fork_wait_memfd_baseline(&p->baseline, SCHED_RELEASE_MS, &ev.count);
	ev.baseline = p->baseline;
	sched_report(p, &ev);
}

/* The commands every process obeys alike. Returns true when CMD was one of them. */
static bool sched_common_command(struct sched_process *p, const struct sched_command *cmd)
{
	switch (cmd->type) {
	case SCHED_CMD_CLOSE:
		if (p->sock >= 0)
			sched_close(p);
		return true;
	case SCHED_CMD_EXIT:
		/* exit(), not _exit(): the exit handlers are part of what is tested (trigger T2). */
		sched_report_simple(p, SCHED_EV_EXITING, -1, 0);
		exit(0);
	case SCHED_CMD_FINISH:
		if (p->sock >= 0)
			sched_close(p);
		sched_report_simple(p, SCHED_EV_EXITING, -1, 0);
		exit(0);
	default:
		return false;
	}
}

static void sched_sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The process's own first touch of a turn: read(), write(), or poll() for what the turn needs. */
static long sched_first_touch(struct sched_process *p, enum sched_touch touch,
			      const struct fork_pump_goal *goal, struct stream_result *result)
{
	struct pollfd pfd = { .fd = p->sock };
	int r;

	if (touch != SCHED_TOUCH_POLL)
		return fork_pump_touch(&p->pump, touch == SCHED_TOUCH_READ, goal, result);
	pfd.events = fork_pump_events(&p->pump, goal);
	do
		r = poll(&pfd, 1, p->args->stall_ms);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return 0;
	memset(result, 0, sizeof *result);
	result->sent = p->pump.sent;
	result->received = p->pump.received;
	result->offset = p->pump.received;
	if (r == 0) {
		result->outcome = STREAM_TIMEOUT;
	} else {
		result->outcome = STREAM_ERROR;
		result->call = "poll";
		result->error = errno;
	}
	return -1;
}

/* An owner's turn: continue both streams from the offsets of CMD up to the turn's plan. */
static void sched_owner_turn(struct sched_process *p, const struct sched_command *cmd)
{
	const struct sched_turn *t = &p->plan->turn[cmd->turn];
	bool last = cmd->turn == p->plan->turns - 1;
	struct fork_pump_goal goal = { t->owner_sent, t->owner_received, false };
	struct stream_result result;

	if (p->sock < 0)
		sched_report_failure(p, "go after close", EBADF);
	if (last)
		goal = fork_pump_goal_end(&p->pump);
	p->pump.sent = cmd->sent;
	p->pump.received = cmd->received;
	if (cmd->turn > 0) {
		long n;

		sched_sleep_us(t->delay_us);
		n = sched_first_touch(p, t->touch, &goal, &result);
		if (n >= 0)
			fork_pump_result_ok(&p->pump, &result);
		sched_report_result(p, SCHED_EV_TOUCHED, cmd->turn, n < 0 ? 0 : (uint64_t)n, &result);
		if (n < 0) {
			sched_report_result(p, SCHED_EV_TURN_DONE, cmd->turn, 0, &result);
			return;
		}
	}
	fork_pump_run(&p->pump, &goal, p->args->stall_ms, &result);
	sched_report_result(p, SCHED_EV_TURN_DONE, cmd->turn, 0, &result);
}

/* The parent forks; the child goes on in the same loop with its own command pipe. */
static void sched_fork(struct sched_process *p)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		sched_report_failure(p, "fork", errno);
	if (pid == 0) {
		close(p->command_fd);
		p->proc = SCHED_CHILD;
		p->command_fd = p->args->pipes.command_read[SCHED_CHILD];
		p->pump.chunks ^= 0xc41dull; /* its own chunk sizes */
		return;
	}
	close(p->args->pipes.command_read[SCHED_CHILD]);
	sched_report_simple(p, SCHED_EV_FORKED, 0, (uint64_t)pid);
}

/* Listens, reports the port, and accepts the peer's one connection. Returns the socket. */
static int sched_server_accept(struct sched_process *p)
{
	struct pollfd pfd;
	unsigned port;
	int listen_fd = fault_listen_loopback(1, &port), fd;

	if (listen_fd < 0)
		sched_report_failure(p, "listen", -listen_fd);
	sched_report_simple(p, SCHED_EV_PORT, -1, port);
	pfd.fd = listen_fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, SCHED_ACCEPT_MS) <= 0)
		sched_report_failure(p, "no connection", ETIMEDOUT);
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		sched_report_failure(p, "accept", errno);
	/* The child is not to inherit a listener: only the connection is handed over. */
	close(listen_fd);
	return fd;
}

void sched_role_server(const struct sched_role_args *args)
{
	struct sched_process p = { .args = args, .plan = args->plan, .proc = SCHED_PARENT };

	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the driver */
	p.command_fd = args->pipes.command_read[SCHED_PARENT];
	close(args->pipes.command_read[SCHED_PEER]);
	if (fork_count_memfd(0, &p.baseline) < 0)
		sched_report_failure(&p, "/proc/self", errno);
	p.sock = sched_server_accept(&p);
	fork_pump_init(&p.pump, p.sock, sched_server_seed(p.plan), sched_peer_seed(p.plan),
		       p.plan->server_total, p.plan->peer_total, p.plan->seed * 3 + 1);
	sched_report_simple(&p, SCHED_EV_READY, -1, 0);
	for (;;) {
		struct sched_command cmd;
		struct fork_pump_goal goal;
		struct stream_result result;

		sched_read_command(&p, &cmd);
		if (sched_common_command(&p, &cmd))
			continue;
		switch (cmd.type) {
		case SCHED_CMD_GO:
			sched_owner_turn(&p, &cmd);
			break;
		case SCHED_CMD_FORK:
			sched_fork(&p);
			break;
		case SCHED_CMD_TO_END:
			goal = fork_pump_goal_end(&p.pump);
			fork_pump_run(&p.pump, &goal, args->stall_ms, &result);
			sched_report_result(&p, SCHED_EV_TURN_DONE, -1, 0, &result);
			break;
		default:
			sched_report_failure(&p, "unknown command", EINVAL);
		}
	}
}

/* ---- the peer -------------------------------------------------------------------------- */

struct sched_peer {
	struct sched_process p;
	struct fork_pump_goal goal;
	int turn;
	bool reported; /* the turn's share is done and said */
	bool stopped;  /* a call failed: no more pumping */
	struct stream_result last;
	double progress_at;
};

static void sched_peer_command(struct sched_peer *peer, const struct sched_command *cmd)
{
	const struct sched_plan *plan = peer->p.plan;

	if (sched_common_command(&peer->p, cmd))
		return;
	if (cmd->type == SCHED_CMD_PEER_TURN) {
		const struct sched_turn *t = &plan->turn[cmd->turn];

		peer->turn = cmd->turn;
		peer->goal.send_limit = t->peer_allowed;
		peer->goal.recv_limit = t->peer_received;
		peer->goal.to_end = cmd->turn == plan->turns - 1;
	} else if (cmd->type == SCHED_CMD_TO_END) {
		peer->turn = -1;
		peer->goal = fork_pump_goal_end(&peer->p.pump);
	} else {
		sched_report_failure(&peer->p, "unknown command", EINVAL);
	}
	peer->progress_at = fault_now_ms();
	peer->reported = false;
	if (peer->stopped) {
		/* After a failure every later question gets the same answer. */
		sched_report_result(&peer->p, SCHED_EV_PEER_DONE, peer->turn, 0, &peer->last);
		peer->reported = true;
	}
}

/* Says the turn's share is done once the peer has read what the plan says (or all, at the end). */
static void sched_peer_check(struct sched_peer *peer)
{
	bool done = peer->goal.to_end ? fork_pump_done(&peer->p.pump, &peer->goal)
				      : peer->p.pump.received >= peer->goal.recv_limit;

	if (peer->reported || peer->stopped)
		return;
	if (done) {
		fork_pump_result_ok(&peer->p.pump, &peer->last);
	} else if (fault_now_ms() - peer->progress_at > peer->p.args->stall_ms) {
		fork_pump_result_ok(&peer->p.pump, &peer->last);
		peer->last.outcome = STREAM_TIMEOUT;
		peer->stopped = true;
	} else {
		return;
	}
	sched_report_result(&peer->p, SCHED_EV_PEER_DONE, peer->turn, 0, &peer->last);
	peer->reported = true;
}

void sched_role_peer(const struct sched_role_args *args)
{
	struct sched_peer peer = { .p = { .args = args, .plan = args->plan, .proc = SCHED_PEER } };
	struct sockaddr_in local;
	socklen_t len = sizeof local;

	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	peer.p.command_fd = args->pipes.command_read[SCHED_PEER];
	close(args->pipes.command_read[SCHED_PARENT]);
	close(args->pipes.command_read[SCHED_CHILD]);
	if (fork_count_memfd(0, &peer.p.baseline) < 0)
		sched_report_failure(&peer.p, "/proc/self", errno);
	peer.p.sock = fault_connect_loopback(args->port);
	if (peer.p.sock < 0)
		sched_report_failure(&peer.p, "connect", -peer.p.sock);
	if (getsockname(peer.p.sock, (struct sockaddr *)&local, &len) < 0)
		sched_report_failure(&peer.p, "getsockname", errno);
	fork_pump_init(&peer.p.pump, peer.p.sock, sched_peer_seed(args->plan),
		       sched_server_seed(args->plan), args->plan->peer_total,
		       args->plan->server_total, ~args->plan->seed);
	peer.p.pump.shut_early = args->plan->peer_shut_early;
	peer.reported = true;
	peer.turn = -1;
	bool hung_up = false;
	sched_report_simple(&peer.p, SCHED_EV_READY, -1, ntohs(local.sin_port));
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = peer.p.command_fd, .events = POLLIN },
			{ .fd = peer.p.sock },
		};
		bool pumping = peer.p.sock >= 0 && !peer.stopped, idle;

		if (pumping)
			pfd[1].events = fork_pump_events(&peer.p.pump, &peer.goal);
		/*
		 * With nothing to move, the peer leaves its socket alone (away), or waits for it to
		 * become readable as a program awaiting a reply does, pausing a little when it is
		 * readable with nothing to be read yet, and leaving it once it hung up.
		 */
		idle = pumping && pfd[1].events == 0;
		if (idle && !args->plan->peer_idles_away && !peer.p.pump.eof && !hung_up)
			pfd[1].events = POLLIN;
		pumping = pumping && pfd[1].events != 0;
		if (poll(pfd, pumping ? 2 : 1, 50) < 0 && errno != EINTR)
			sched_report_failure(&peer.p, "poll", errno);
		if (idle && pumping && pfd[1].revents != 0) {
			hung_up = (pfd[1].revents & (POLLHUP | POLLERR)) != 0;
			fault_sleep_ms(1);
		}
		/* A step even without events: the shutdown after the last byte may be due. */
		if (peer.p.sock >= 0 && !peer.stopped) {
			bool was_eof = peer.p.pump.eof;
			long n = fork_pump_step(&peer.p.pump, pumping ? pfd[1].revents : 0,
						&peer.goal, &peer.last);

			if (n < 0) {
				peer.stopped = true;
				sched_report_result(&peer.p, SCHED_EV_PEER_DONE, peer.turn, 0,
						    &peer.last);
				peer.reported = true;
			} else if (n > 0 || peer.p.pump.eof != was_eof) {
				peer.progress_at = fault_now_ms();
			}
		}
		sched_peer_check(&peer);
		if (pfd[0].revents != 0) {
			struct sched_command cmd;

			sched_read_command(&peer.p, &cmd);
			sched_peer_command(&peer, &cmd);
		}
	}
}
