/* fork_server: a stream_check server that forks, either a child per accepted connection or N pre-forked workers sharing one listening socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_util.h"
#include "fork_util.h"
#include "stream.h"

/* How long one connection may take, header included. */
#define FORK_SERVER_CONN_MS 20000
/* The server gives up when no connection came for this long, or its children outlive it. */
#define FORK_SERVER_IDLE_MS 30000
#define FORK_SERVER_CONNS_MAX 10000
#define FORK_SERVER_WORKERS_MAX 64
/* How long a pre-forked worker waits for every other worker to accept its first connection. */
#define FORK_SERVER_BARRIER_MS 10000
/* How long the parent's memfd counts may take to come back after its last close. */
#define FORK_SERVER_RELEASE_MS 2000

/* Exit status when some connection (or worker) was wrong, as stream_check's server. */
#define FORK_SERVER_EXIT_WRONG 3

static volatile sig_atomic_t fork_server_stop;

static void fork_server_usage(FILE *out)
{
	fprintf(out,
		"usage: fork_server accept-fork PORT_FILE COUNT [--parent close|keep|delay=MS] [--child-poll]\n"
		"       fork_server prefork WORKERS PORT_FILE COUNT [--accept blocking|poll]\n"
		"  Listens on 127.0.0.1 at a port the kernel picks, writes \"PORT PID\" to PORT_FILE,\n"
		"  and serves COUNT stream_check connections (stream_check or fork_clients as\n"
		"  clients): the client's 16-byte header, then both streams at once, every byte checked.\n"
		"  accept-fork: the parent accepts each connection and forks a child that serves it.\n"
		"    --parent close    the parent closes its copy right after the fork (default);\n"
		"    --parent delay=MS the parent closes its copy MS milliseconds after the fork;\n"
		"    --parent keep     the parent keeps its copy open until the child has exited;\n"
		"    --child-poll      the child waits in poll() for the header before its first read.\n"
		"    At the end the parent's mappings and fds of viaudit's shared memory must be back\n"
		"    where they were before the first connection.\n"
		"  prefork: forks WORKERS workers (1..%d) that all accept on the inherited listening\n"
		"    socket, with a blocking accept() (stopped by SIGTERM) or poll() and a non-blocking\n"
		"    accept(). A worker takes its second connection only once every worker has taken\n"
		"    one, so with WORKERS clients at once every worker must accept.\n"
		"  Prints \"conn N (pid P): <verdict>\" for each connection, then \"served N connections,\n"
		"  K failed\". Exit 0 when all was right, 3 when a connection (or a worker) was wrong,\n"
		"  1 when the server itself failed, 2 on bad usage.\n",
		FORK_SERVER_WORKERS_MAX);
}

static void fork_server_on_term(int sig)
{
	(void)sig;
	fork_server_stop = 1;
}

/* Serves one connection: header, then the exchange. Returns 0 when it was right. */
static int fork_server_serve(int fd, unsigned long number, bool poll_first)
{
	char prefix[80];
	int r;

	snprintf(prefix, sizeof prefix, "conn %lu (pid %ld): ", number, (long)getpid());
	if (poll_first) {
		/* rsocket's fork support fails here: a poll() before the child's first read. */
		struct pollfd p = { .fd = fd, .events = POLLIN };

		do
			r = poll(&p, 1, FORK_SERVER_CONN_MS);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			printf("%spoll before the first read: %s\n", prefix,
			       r == 0 ? "timed out" : fault_errno_name(errno));
			return -1;
		}
	}
	return stream_serve(fd, prefix, number, FORK_SERVER_CONN_MS);
}

static void fork_server_set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fork_server_on_term; /* no SA_RESTART: accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Listens and writes the port file. Returns the listening fd, or -1 (said on stderr). */
static int fork_server_listen(const char *port_file)
{
	unsigned port;
	int fd = fault_listen_loopback(128, &port), r;

	if (fd < 0) {
		fprintf(stderr, "fork_server: listen: %s\n", strerror(-fd));
		return -1;
	}
	r = fault_write_port_file(port_file, port);
	if (r < 0) {
		fprintf(stderr, "fork_server: %s: %s\n", port_file, strerror(-r));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- accept-fork ----------------------------------------------------------------------- */

enum fork_parent_mode { PARENT_CLOSE, PARENT_DELAY, PARENT_KEEP };

struct fork_child {
	pid_t pid;
	int fd;          /* the parent's copy, until it closes it */
	double close_at; /* PARENT_DELAY: when to close it */
	bool ended;
	bool right;
};

struct accept_fork {
	enum fork_parent_mode mode;
	long delay_ms;
	bool child_poll;
	struct fork_child *children;
	unsigned long accepted, ended, failed;
};

/* Closes the parent's copies that are due: PARENT_DELAY after the delay, PARENT_KEEP once the child ended. */
static void accept_fork_close_due(struct accept_fork *af)
{
	double now = fault_now_ms();

	for (unsigned long i = 0; i < af->accepted; i++) {
		struct fork_child *c = &af->children[i];

		if (c->fd < 0)
			continue;
		if ((af->mode == PARENT_DELAY && now >= c->close_at) ||
		    (af->mode == PARENT_KEEP && c->ended)) {
			close(c->fd);
			c->fd = -1;
		}
	}
}

/* Reaps the children that ended and records their verdicts (exit 0: right). */
static void accept_fork_reap(struct accept_fork *af)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned long i = 0; i < af->accepted; i++) {
			struct fork_child *c = &af->children[i];

			if (c->pid != pid)
				continue;
			c->ended = true;
			c->right = WIFEXITED(status) && WEXITSTATUS(status) == 0;
			if (WIFSIGNALED(status))
				printf("conn %lu (pid %ld): child killed by signal %d\n", i + 1,
				       (long)pid, WTERMSIG(status));
			af->ended++;
			if (!c->right)
				af->failed++;
		}
	}
}

/* Accepts one connection and forks its child. Returns 0, or -1 when the server must stop. */
static int accept_fork_one(struct accept_fork *af, int listen_fd)
{
	struct fork_child *c = &af->children[af->accepted];
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			return 0;
		fprintf(stderr, "fork_server: accept: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		fprintf(stderr, "fork_server: fork: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	if (c->pid == 0) {
		/* As a careful server does: the child keeps only its own connection. */
		close(listen_fd);
		for (unsigned long i = 0; i < af->accepted; i++)
			if (af->children[i].fd >= 0)
				close(af->children[i].fd);
		int r = fork_server_serve(fd, af->accepted + 1, af->child_poll);

		close(fd);
		free(af->children);
		fflush(stdout);
		exit(r == 0 ? 0 : 1);
	}
	c->fd = fd;
	c->close_at = fault_now_ms() + (double)af->delay_ms;
	af->accepted++;
	if (af->mode == PARENT_CLOSE) {
		close(c->fd);
		c->fd = -1;
	}
	return 0;
}

/* After the last child: the parent's memfd counts must be back at BASELINE. Returns 0 when they are. */
static int fork_server_check_release(const char *who, const struct fork_memfd_count *baseline)
{
	struct fork_memfd_count now;
	bool back = fork_wait_memfd_baseline(baseline, FORK_SERVER_RELEASE_MS, &now);

	printf("%s: %d %s mapping(s) and %d fd(s) after closing every copy (before: %d and %d)%s\n",
	       who, now.maps, FORK_MEMFD_NAME, now.fds, baseline->maps, baseline->fds,
	       back ? "" : ": LEAKED");
	return back ? 0 : -1;
}

static int fork_server_accept_fork(const char *port_file, unsigned long count,
				   struct accept_fork *af)
{
	struct fork_memfd_count baseline = { 0, 0 };
	double last = fault_now_ms();
	int listen_fd, status = FAULT_EXIT_OK;

	af->children = calloc(count, sizeof *af->children);
	if (af->children == NULL)
		return FAULT_EXIT_FAILED;
	fork_count_memfd(0, &baseline);
	listen_fd = fork_server_listen(port_file);
	if (listen_fd < 0)
		return FAULT_EXIT_FAILED;
	while (af->ended < count) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };
		bool accepting = af->accepted < count && !fork_server_stop;

		accept_fork_reap(af);
		accept_fork_close_due(af);
		if (fork_server_stop && af->ended == af->accepted)
			break;
		if (fault_now_ms() - last > FORK_SERVER_IDLE_MS) {
			printf("fork_server: %s for %d s\n",
			       accepting ? "no connection" : "children still running",
			       FORK_SERVER_IDLE_MS / 1000);
			status = FAULT_EXIT_FAILED;
			break;
		}
		if (poll(&p, accepting ? 1 : 0, 10) > 0 && accepting) {
			if (accept_fork_one(af, listen_fd) < 0) {
				status = FAULT_EXIT_FAILED;
				break;
			}
			last = fault_now_ms();
		}
	}
	close(listen_fd);
	for (unsigned long i = 0; i < af->accepted; i++) {
		if (!af->children[i].ended) {
			kill(af->children[i].pid, SIGKILL);
			waitpid(af->children[i].pid, NULL, 0);
			af->failed++;
		}
		if (af->children[i].fd >= 0)
			close(af->children[i].fd);
	}
	free(af->children);
	printf("served %lu connections, %lu failed\n", af->accepted, af->failed);
	if (status == FAULT_EXIT_OK && fork_server_check_release("parent", &baseline) < 0)
		status = FORK_SERVER_EXIT_WRONG;
	if (status == FAULT_EXIT_OK && af->failed > 0)
		status = FORK_SERVER_EXIT_WRONG;
	return status;
}

/* ---- prefork --------------------------------------------------------------------------- */

/* What the workers share (an anonymous shared mapping made before they are forked). */
struct prefork_shared {
	_Atomic unsigned long next_number, served, failed;
	_Atomic bool stop;
	_Atomic unsigned long accepted[FORK_SERVER_WORKERS_MAX];
};

struct prefork {
	unsigned workers;
	bool use_poll;
	struct prefork_shared *shared;
};

/* True once every worker has accepted a connection. */
static bool prefork_all_accepted(const struct prefork *pf)
{
	for (unsigned w = 0; w < pf->workers; w++)
		if (atomic_load(&pf->shared->accepted[w]) == 0)
			return false;
	return true;
}

/* Waits until every worker has accepted one connection, the server stops, or the barrier times out. */
static void prefork_wait_others(const struct prefork *pf, unsigned worker)
{
	double deadline = fault_now_ms() + FORK_SERVER_BARRIER_MS;

	while (!prefork_all_accepted(pf) && !atomic_load(&pf->shared->stop) && !fork_server_stop) {
		if (fault_now_ms() > deadline) {
			printf("worker %u (pid %ld): not every worker accepted within %d s\n", worker,
			       (long)getpid(), FORK_SERVER_BARRIER_MS / 1000);
			return;
		}
		fault_sleep_ms(1);
	}
}

/* Accepts, with poll() first when asked. Returns the fd, or -1 (nothing this time, or stop). */
static int prefork_accept(const struct prefork *pf, int listen_fd)
{
	if (pf->use_poll) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };

		if (poll(&p, 1, 100) <= 0)
			return -1;
	}
	return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

static void prefork_worker(const struct prefork *pf, unsigned worker, int listen_fd)
{
	bool waited = false;

	while (!atomic_load(&pf->shared->stop) && !fork_server_stop) {
		unsigned long number;
		int fd;

		if (!waited && atomic_load(&pf->shared->accepted[worker]) > 0) {
			prefork_wait_others(pf, worker);
			waited = true;
			continue;
		}
		fd = prefork_accept(pf, listen_fd);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ||
			    pf->use_poll)
				continue;
			printf("worker %u (pid %ld): accept: %s\n", worker, (long)getpid(),
			       fault_errno_name(errno));
			break;
		}
		atomic_fetch_add(&pf->shared->accepted[worker], 1);
		number = atomic_fetch_add(&pf->shared->next_number, 1) + 1;
		if (fork_server_serve(fd, number, false) < 0)
			atomic_fetch_add(&pf->shared->failed, 1);
		atomic_fetch_add(&pf->shared->served, 1);
		close(fd);
	}
	fflush(stdout);
	exit(0);
}

/* Stops the workers: SIGTERM, then SIGKILL for one still there after 3 s. Returns how many needed SIGKILL or died badly. */
static unsigned prefork_stop(struct prefork *pf, const pid_t *pids)
{
	unsigned bad = 0;

	atomic_store(&pf->shared->stop, true);
	for (unsigned w = 0; w < pf->workers; w++)
		kill(pids[w], SIGTERM);
	for (unsigned w = 0; w < pf->workers; w++) {
		double deadline = fault_now_ms() + 3000;
		int status;
		pid_t r;

		while ((r = waitpid(pids[w], &status, WNOHANG)) == 0 && fault_now_ms() < deadline)
			fault_sleep_ms(5);
		if (r == 0) {
			printf("worker %u (pid %ld): still running 3 s after SIGTERM (blocked in accept?): killed\n",
			       w, (long)pids[w]);
			kill(pids[w], SIGKILL);
			waitpid(pids[w], &status, 0);
			bad++;
		} else if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			printf("worker %u (pid %ld): ended with %s %d\n", w, (long)pids[w],
			       WIFSIGNALED(status) ? "signal" : "status",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			bad++;
		}
	}
	return bad;
}

static int fork_server_prefork(const char *port_file, unsigned long count, struct prefork *pf)
{
	pid_t pids[FORK_SERVER_WORKERS_MAX];
	double last = fault_now_ms();
	unsigned long served = 0;
	unsigned bad, missing = 0;
	int listen_fd, status = FAULT_EXIT_OK;

	pf->shared = mmap(NULL, sizeof *pf->shared, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pf->shared == MAP_FAILED)
		return FAULT_EXIT_FAILED;
	listen_fd = fork_server_listen(port_file);
	if (listen_fd < 0)
		return FAULT_EXIT_FAILED;
	if (pf->use_poll && fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) < 0)
		return FAULT_EXIT_FAILED;
	for (unsigned w = 0; w < pf->workers; w++) {
		fflush(NULL);
		pids[w] = fork();
		if (pids[w] < 0) {
			fprintf(stderr, "fork_server: fork: %s\n", strerror(errno));
			return FAULT_EXIT_FAILED;
		}
		if (pids[w] == 0)
			prefork_worker(pf, w, listen_fd);
	}
	/* The parent keeps the listening socket open, as pre-forking servers do, but never accepts. */
	while ((served = atomic_load(&pf->shared->served)) < count && !fork_server_stop) {
		if (atomic_load(&pf->shared->next_number) > served)
			last = fault_now_ms();
		if (fault_now_ms() - last > FORK_SERVER_IDLE_MS) {
			printf("fork_server: only %lu of %lu connections served after %d s without one\n",
			       served, count, FORK_SERVER_IDLE_MS / 1000);
			status = FAULT_EXIT_FAILED;
			break;
		}
		if (waitpid(-1, NULL, WNOHANG) > 0) {
			printf("fork_server: a worker ended before the %lu connections were served\n",
			       count);
			status = FAULT_EXIT_FAILED;
			break;
		}
		fault_sleep_ms(10);
	}
	bad = prefork_stop(pf, pids);
	close(listen_fd);
	for (unsigned w = 0; w < pf->workers; w++) {
		unsigned long n = atomic_load(&pf->shared->accepted[w]);

		printf("worker %u (pid %ld): accepted %lu connection(s)\n", w, (long)pids[w], n);
		missing += n == 0;
	}
	if (missing == 0)
		printf("every worker accepted: yes (%u workers)\n", pf->workers);
	else
		printf("every worker accepted: no (%u of %u workers accepted none)\n", missing,
		       pf->workers);
	printf("served %lu connections, %lu failed\n", served, atomic_load(&pf->shared->failed));
	if (status == FAULT_EXIT_OK &&
	    (missing > 0 || bad > 0 || atomic_load(&pf->shared->failed) > 0))
		status = FORK_SERVER_EXIT_WRONG;
	return status;
}

/* ---- main ------------------------------------------------------------------------------ */

static int fork_server_parse_parent(const char *text, struct accept_fork *af)
{
	uint64_t ms;

	if (strcmp(text, "close") == 0) {
		af->mode = PARENT_CLOSE;
	} else if (strcmp(text, "keep") == 0) {
		af->mode = PARENT_KEEP;
	} else if (strncmp(text, "delay=", 6) == 0 && fault_parse_u64(text + 6, 0, 60000, &ms) == 0) {
		af->mode = PARENT_DELAY;
		af->delay_ms = (long)ms;
	} else {
		return -1;
	}
	return 0;
}

static int fork_server_main_accept_fork(int argc, char **argv)
{
	struct accept_fork af = { .mode = PARENT_CLOSE };
	uint64_t count;

	if (argc < 4 || fault_parse_u64(argv[3], 1, FORK_SERVER_CONNS_MAX, &count) < 0)
		return -1;
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc) {
			if (fork_server_parse_parent(argv[++i], &af) < 0)
				return -1;
		} else if (strcmp(argv[i], "--child-poll") == 0) {
			af.child_poll = true;
		} else {
			return -1;
		}
	}
	return fork_server_accept_fork(argv[2], (unsigned long)count, &af);
}

static int fork_server_main_prefork(int argc, char **argv)
{
	struct prefork pf = { 0 };
	uint64_t workers, count;

	if ((argc != 5 && argc != 7) ||
	    fault_parse_u64(argv[2], 1, FORK_SERVER_WORKERS_MAX, &workers) < 0 ||
	    fault_parse_u64(argv[4], 1, FORK_SERVER_CONNS_MAX, &count) < 0)
		return -1;
	if (argc == 7) {
		if (strcmp(argv[5], "--accept") != 0)
			return -1;
		if (strcmp(argv[6], "poll") == 0)
			pf.use_poll = true;
		else if (strcmp(argv[6], "blocking") != 0)
			return -1;
	}
	if (count < workers) {
		fprintf(stderr, "fork_server: COUNT must be at least WORKERS (each worker accepts one)\n");
		return -1;
	}
	pf.workers = (unsigned)workers;
	return fork_server_prefork(argv[3], (unsigned long)count, &pf);
}

int main(int argc, char **argv)
{
	int r = -1;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		fork_server_usage(stdout);
		return FAULT_EXIT_OK;
	}
	fork_server_set_signals();
	if (argc >= 2 && strcmp(argv[1], "accept-fork") == 0)
		r = fork_server_main_accept_fork(argc, argv);
	else if (argc >= 2 && strcmp(argv[1], "prefork") == 0)
		r = fork_server_main_prefork(argc, argv);
	if (r < 0) {
		fork_server_usage(stderr);
		return FAULT_EXIT_USAGE;
	}
	return r;
}
