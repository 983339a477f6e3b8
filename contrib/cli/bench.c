/* `viaudit bench`: same-host latency and throughput of viaudit against TCP, AF_UNIX and a raw spin. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

extern char **environ;

const struct bench_measure bench_measures[BENCH_MEASURE_COUNT] = {
	{ BENCH_PINGPONG, 64 }, { BENCH_PINGPONG, 1024 }, { BENCH_PINGPONG, 64 * 1024 },
	{ BENCH_STREAM, 64 },   { BENCH_STREAM, 64 * 1024 },
};

/* Seconds per measure: 23 measures make a default run of about 50 s, a quick one about 7 s. */
#define BENCH_SECONDS 2.0
#define BENCH_QUICK_SECONDS 0.25
/* How long a server may take to print its address. */
#define BENCH_START_TIMEOUT_MS 10000
/* A measure that runs this much longer than asked is stuck, and is killed. */
#define BENCH_GRACE_SECONDS 20

/* The policies the viaudit cases run under: the benchmark's own connections go to shm. */
static const char bench_policy_shm[] =
	"# viaudit bench: connections of the benchmark itself to 127.0.0.1 use shared memory.\n"
	"route main tcp 127.0.0.0/8:* shm\n";
static const char bench_policy_spin0[] =
	"# viaudit bench: the same without spinning: a reader with nothing to read sleeps at once.\n"
	"set spin_us 0\n"
	"route main tcp 127.0.0.0/8:* shm\n";

/* The state of one run. */
struct bench_context {
	char workdir[PATH_MAX];         /* policies and conns logs */
	char self[PATH_MAX];            /* this executable, which plays both ends */
	char module[PATH_MAX];          /* libviaudit.so, when found */
	bool have_module;
	double seconds;                 /* per measure */
	bool progress;                  /* stderr is a terminal: say what is being measured */
	pid_t servers[BENCH_CASE_COUNT];
	char addresses[BENCH_CASE_COUNT][128];
	int failures;                   /* parts that could not be measured */
	struct bench_report report;
};

static void bench_print_usage(FILE *out)
{
	fputs("usage: viaudit bench [--quick] [--json] [--plot FILE.png]\n"
	      "\n"
	      "Measure, in one run, ping-pong round trips (64 B, 1 KiB, 64 KiB messages) and\n"
	      "streaming (64 B and 64 KiB messages) between two processes over viaudit shm, kernel\n"
	      "TCP loopback, AF_UNIX stream sockets and a raw shared-memory spin (the floor), and\n"
	      "check them against the targets of the same-host transport.\n"
	      "\n"
	      "  --quick         0.25 s per measure (about 10 s in all) instead of 2 s (about 60 s)\n"
	      "  --json          print the figures as one JSON object instead of a table\n"
	      "  --plot FILE.png also draw them with gnuplot\n"
	      "  -h, --help      print this help\n"
	      "\n"
	      "Exit status: 0 when measured (whether or not each target is met), 1 when it could\n"
	      "not measure, 2 on bad usage. VIAUDIT_MODULE, when set, names the libviaudit.so to use.\n",
	      out);
}

/* The socket kind a case's processes use, or NULL for the raw spin (no socket). */
static const char *bench_case_kind(enum bench_case which)
{
	switch (which) {
	case BENCH_CASE_UNIX:
		return "unix";
	case BENCH_CASE_RAW:
		return NULL;
	default:
		return "tcp";
	}
}

static bool bench_case_is_viaudit(enum bench_case which)
{
	return which == BENCH_CASE_VIAUDIT || which == BENCH_CASE_SPIN0;
}

/* A short name for file names. */
static const char *bench_case_name(enum bench_case which)
{
	static const char *const names[BENCH_CASE_COUNT] = { "tcp", "unix", "raw", "viaudit",
							      "spin0" };
	return names[which];
}

/* Whether an environment entry is one the benchmark sets or must not inherit. */
static bool bench_env_is_ours(const char *entry)
{
	/* MALLOC_PERTURB_ (set by meson test) would fill every allocation and skew the figures. */
	static const char *const prefixes[] = { "LD_AUDIT=", "VIAUDIT_", "MALLOC_PERTURB_=",
						"MALLOC_CHECK_=" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	}
	return false;
}

/* Formats an environment entry into *slot (NULL when out of memory). Returns whether it did. */
__attribute__((format(printf, 2, 3))) static bool bench_env_push(char **slot, const char *format,
								 ...)
{
	va_list args;
	va_start(args, format);
	int n = vasprintf(slot, format, args);
	va_end(args);
	if (n < 0)
		*slot = NULL;
	return n >= 0;
}

/*
 * Builds the environment of a process of case `which`: this one's, without LD_AUDIT and the
 * VIAUDIT_ variables; for a viaudit case, with LD_AUDIT, the case's policy and its conns log
 * `log` (role: "server" or "client"). Returns a malloc'd array of malloc'd strings, or NULL.
 */
static char **bench_make_env(const struct bench_context *ctx, enum bench_case which,
			     const char *role)
{
	size_t count = 0;
	while (environ[count])
		count++;
	char **env = calloc(count + 5, sizeof(char *));
	if (!env)
		return NULL;
	size_t n = 0;
	bool ok = true;
	for (size_t i = 0; i < count && ok; i++) {
		if (bench_env_is_ours(environ[i]))
			continue;
		ok = (env[n++] = strdup(environ[i])) != NULL;
	}
	if (ok && bench_case_is_viaudit(which)) {
		const char *name = bench_case_name(which);
		ok = bench_env_push(&env[n++], "LD_AUDIT=%s", ctx->module) &&
		     bench_env_push(&env[n++], "VIAUDIT_POLICY=%s/%s.policy", ctx->workdir, name) &&
		     bench_env_push(&env[n++], "VIAUDIT_LOG=conns") &&
		     bench_env_push(&env[n++], "VIAUDIT_LOG_FILE=%s/%s-%s.log", ctx->workdir, name,
				    role);
	}
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(env[i]);
		free(env);
		return NULL;
	}
	return env;
}

static void bench_free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/*
 * Starts this executable with `argv` and `env`, its stdout into a pipe whose read end is
 * stored in `out`. Returns the child's pid, or -errno.
 */
static pid_t bench_spawn(const struct bench_context *ctx, char *const argv[], char *const env[],
			 int *out)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	posix_spawn_file_actions_t actions;
	int err = posix_spawn_file_actions_init(&actions);
	if (err == 0)
		err = posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
	pid_t pid = -1;
	if (err == 0) {
		fflush(NULL);
		err = posix_spawn(&pid, ctx->self, &actions, NULL, argv, env);
	}
	posix_spawn_file_actions_destroy(&actions);
	close(pipefd[1]);
	if (err != 0) {
		close(pipefd[0]);
		return -err;
	}
	*out = pipefd[0];
	return pid;
}

/*
 * Reads `fd` into `buf` (NUL-terminated) until EOF, or until the first newline when
 * `one_line`, for at most `timeout_ms`. Returns the length, -ETIMEDOUT, or -errno.
 */
static ssize_t bench_read_output(int fd, char *buf, size_t size, int timeout_ms, bool one_line)
{
	size_t len = 0;
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	buf[0] = '\0';
	for (;;) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int ready = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
		if (ready < 0 && errno != EINTR)
			return -errno;
		if (ready <= 0)
			continue;
		if (len + 1 >= size)
			return (ssize_t)len; /* more than any result line: keep what fits */
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0) {
			if (n == 0)
				return (ssize_t)len;
			continue;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (one_line && strchr(buf, '\n'))
			return (ssize_t)len;
	}
}

/* Kills a child (when it runs) and reaps it. Returns its wait status, or -1. */
static int bench_reap(pid_t pid, bool kill_it)
{
	int status;
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return status;
}

/* Starts the server of a socket case and stores its address. Returns 0, or -errno. */
static int bench_start_server(struct bench_context *ctx, enum bench_case which)
{
	char *argv[] = { "viaudit", "bench", "--serve", (char *)bench_case_kind(which), NULL };
	char **env = bench_make_env(ctx, which, "server");
	if (!env)
		return -ENOMEM;
	int out;
	pid_t pid = bench_spawn(ctx, argv, env, &out);
	bench_free_env(env);
	if (pid < 0)
		return pid;
	char line[sizeof(ctx->addresses[0])];
	ssize_t len = bench_read_output(out, line, sizeof(line), BENCH_START_TIMEOUT_MS, true);
	close(out);
	char *newline = len > 0 ? strchr(line, '\n') : NULL;
	if (!newline) {
		bench_reap(pid, true);
		return len < 0 ? (int)len : -EPROTO;
	}
	*newline = '\0';
	strcpy(ctx->addresses[which], line);
	ctx->servers[which] = pid;
	return 0;
}

/* Stops every server that runs: SIGKILL, which also ends a stopped or stuck one. */
static void bench_stop_servers(struct bench_context *ctx)
{
	for (int which = 0; which < BENCH_CASE_COUNT; which++) {
		if (ctx->servers[which] > 0) {
			bench_reap(ctx->servers[which], true);
			ctx->servers[which] = 0;
		}
	}
}

/*
 * Runs one measure of a socket case in a client process of its own. Returns 0 with `result`
 * filled, or -errno (the client prints why on stderr).
 */
static int bench_measure_socket(struct bench_context *ctx, enum bench_case which,
				const struct bench_measure *measure, struct bench_result *result)
{
	char size[32], seconds[32];
	snprintf(size, sizeof(size), "%zu", measure->size);
	snprintf(seconds, sizeof(seconds), "%.3f", ctx->seconds);
	char *argv[] = { "viaudit",
			 "bench",
			 "--measure",
			 (char *)bench_case_kind(which),
			 ctx->addresses[which],
			 measure->mode == BENCH_PINGPONG ? "pingpong" : "stream",
			 size,
			 seconds,
			 NULL };
	char **env = bench_make_env(ctx, which, "client");
	if (!env)
		return -ENOMEM;
	int out;
	pid_t pid = bench_spawn(ctx, argv, env, &out);
	bench_free_env(env);
	if (pid < 0)
		return pid;
	char text[512];
	int timeout_ms = (int)((ctx->seconds + BENCH_GRACE_SECONDS) * 1000);
	ssize_t len = bench_read_output(out, text, sizeof(text), timeout_ms, false);
	close(out);
	int status = bench_reap(pid, len < 0);
	if (len == -ETIMEDOUT) {
		fprintf(stderr,
			"viaudit bench: %s: a measure took %d s longer than asked; killed, with its "
			"server: the case's other measures are left out\n",
			bench_case_name(which), BENCH_GRACE_SECONDS);
		bench_reap(ctx->servers[which], true);
		ctx->servers[which] = 0;
		return -ETIMEDOUT;
	}
	if (len < 0)
		return (int)len;
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (status != -1 && WIFSIGNALED(status))
			fprintf(stderr, "viaudit bench: %s: the client died of signal %d\n",
				bench_case_name(which), WTERMSIG(status));
		return -EIO;
	}
	return bench_result_parse(text, result);
}

/* Runs one measure of one case. Returns 0 (also for a measure the case does not have), or -errno. */
static int bench_measure_case(struct bench_context *ctx, enum bench_case which,
			      const struct bench_measure *measure, struct bench_result *result)
{
	memset(result, 0, sizeof(*result));
	if (which == BENCH_CASE_RAW) {
		if (measure->mode != BENCH_PINGPONG)
			return 0; /* the floor is a ping-pong only */
		int err = bench_shmraw_pingpong(measure->size, ctx->seconds,
						bench_warmup_seconds(ctx->seconds), result);
		if (err < 0)
			fprintf(stderr, "viaudit bench: raw spin ping-pong: %s\n", strerror(-err));
		return err;
	}
	if (ctx->servers[which] <= 0)
		return -ENOTCONN;
	return bench_measure_socket(ctx, which, measure, result);
}

/*
 * Reads the client conns log of a viaudit case: which transport carried its connections,
 * and the reason of the first that fell back.
 */
static void bench_detect_carrier(struct bench_context *ctx, enum bench_case which)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s-client.log", ctx->workdir, bench_case_name(which));
	enum bench_carrier *carrier = &ctx->report.carriers[which];
	char *reason = ctx->report.carrier_reasons[which];
	size_t nshm = 0, nother = 0;
	FILE *log = fopen(path, "r");
	char line[1024];
	while (log && fgets(line, sizeof(line), log)) {
		char *transport = strstr(line, " transport=");
		if (!strstr(line, "viaudit: conns: ") || strstr(line, " listening ") || !transport)
			continue;
		transport += strlen(" transport=");
		if (strncmp(transport, "shm", 3) == 0 && (transport[3] == ' ' || transport[3] == '\n')) {
			nshm++;
			continue;
		}
		if (nother++ == 0) {
			char *end = strstr(transport, " rule=");
			if (!end)
				end = transport + strcspn(transport, "\n");
			snprintf(reason, sizeof(ctx->report.carrier_reasons[0]), "%.*s",
				 (int)(end - transport), transport);
		}
	}
	if (log)
		fclose(log);
	if (nshm > 0 && nother > 0)
		*carrier = BENCH_CARRIER_MIXED;
	else if (nshm > 0)
		*carrier = BENCH_CARRIER_SHM;
	else if (nother > 0)
		*carrier = BENCH_CARRIER_FALLBACK;
	else
		*carrier = BENCH_CARRIER_NOT_ROUTED;
}

/* Writes `text` to the file `name` in the work directory. Returns 0, or -errno. */
static int bench_write_file(const struct bench_context *ctx, const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", ctx->workdir, name);
	FILE *file = fopen(path, "w");
	if (!file)
		return -errno;
	fputs(text, file);
	return fclose(file) == 0 ? 0 : -errno;
}

/* Removes the work directory and what the run left in it. */
static void bench_remove_workdir(const struct bench_context *ctx)
{
	DIR *dir = opendir(ctx->workdir);
	if (dir) {
		struct dirent *entry;
		while ((entry = readdir(dir)) != NULL) {
			if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
				unlinkat(dirfd(dir), entry->d_name, 0);
		}
		closedir(dir);
	}
	rmdir(ctx->workdir);
}

/* Reads the busy and total jiffies of all CPUs from /proc/stat. Returns 0, or -errno. */
static int bench_read_cpu_time(unsigned long long *busy, unsigned long long *total)
{
	FILE *file = fopen("/proc/stat", "r");
	if (!file)
		return -errno;
	unsigned long long v[8] = { 0 };
	int n = fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		       &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(file);
	if (n < 4)
		return -EINVAL;
	*total = 0;
	for (int i = 0; i < 8; i++)
		*total += v[i];
	*busy = *total - v[3] - v[4]; /* all but idle and iowait */
	return 0;
}

/*
 * How many CPUs other work keeps busy, over 0.3 s before the run: the spinning cases need a
 * CPU each, so a busy machine changes what they measure. Returns -1 when it cannot tell.
 */
static double bench_measure_busy_cpus(long cpus)
{
	unsigned long long busy0, total0, busy1, total1;
	if (bench_read_cpu_time(&busy0, &total0) < 0)
		return -1;
	usleep(300000);
	if (bench_read_cpu_time(&busy1, &total1) < 0 || total1 <= total0)
		return -1;
	return (double)(busy1 - busy0) / (double)(total1 - total0) * (double)cpus;
}

static void bench_read_load(char *buf, size_t size)
{
	snprintf(buf, size, "unknown");
	FILE *file = fopen("/proc/loadavg", "r");
	if (!file)
		return;
	double a, b, c;
	if (fscanf(file, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
	fclose(file);
}

/*
 * Prepares a run: the work directory with the policies, this executable's path, the audit
 * module (the viaudit cases are left out without it) and the servers. Returns 0, or -errno
 * when nothing could be measured.
 */
static int bench_prepare(struct bench_context *ctx)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(ctx->workdir, sizeof(ctx->workdir), "%s/viaudit-bench.XXXXXX",
		 tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(ctx->workdir)) {
		int err = -errno;
		fprintf(stderr, "viaudit bench: cannot make a directory in %s: %s\n",
			tmp && tmp[0] ? tmp : "/tmp", strerror(-err));
		ctx->workdir[0] = '\0';
		return err;
	}
	ssize_t n = readlink("/proc/self/exe", ctx->self, sizeof(ctx->self) - 1);
	if (n < 0) {
		int err = -errno;
		fprintf(stderr, "viaudit bench: cannot find my own executable: %s\n", strerror(-err));
		return err;
	}
	ctx->self[n] = '\0';
	int err = bench_write_file(ctx, "viaudit.policy", bench_policy_shm);
	if (err == 0)
		err = bench_write_file(ctx, "spin0.policy", bench_policy_spin0);
	if (err < 0) {
		fprintf(stderr, "viaudit bench: cannot write a policy in %s: %s\n", ctx->workdir,
			strerror(-err));
		return err;
	}
	ctx->have_module = run_find_module(ctx->module) == 0;
	if (!ctx->have_module) {
		fputs("viaudit bench: without libviaudit.so the viaudit cases cannot be measured\n",
		      stderr);
		ctx->failures++;
	}
	for (int which = 0; which < BENCH_CASE_COUNT; which++) {
		ctx->report.carriers[which] = bench_case_is_viaudit(which) ? BENCH_CARRIER_UNKNOWN
									   : BENCH_CARRIER_KERNEL;
		if (which == BENCH_CASE_RAW || (bench_case_is_viaudit(which) && !ctx->have_module))
			continue;
		err = bench_start_server(ctx, which);
		if (err < 0) {
			fprintf(stderr, "viaudit bench: the %s server did not start: %s\n",
				bench_case_name(which), strerror(-err));
			ctx->failures++;
		}
	}
	return ctx->servers[BENCH_CASE_TCP] > 0 ? 0 : -ENOTCONN;
}

/* Measures every case for every measure, the cases of one measure back to back. */
static void bench_measure_all(struct bench_context *ctx)
{
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		const struct bench_measure *measure = &bench_measures[m];
		if (ctx->progress)
			fprintf(stderr, "viaudit bench: %s, %zu B messages...\n",
				measure->mode == BENCH_PINGPONG ? "ping-pong" : "streaming",
				measure->size);
		for (int which = 0; which < BENCH_CASE_COUNT; which++) {
			if (bench_case_is_viaudit(which) && !ctx->have_module)
				continue;
			if (bench_measure_case(ctx, which, measure, &ctx->report.results[m][which]) < 0)
				ctx->failures++;
		}
	}
	for (int which = 0; which < BENCH_CASE_COUNT; which++) {
		if (bench_case_is_viaudit(which) && ctx->have_module) {
			bench_detect_carrier(ctx, which);
			if (ctx->report.carriers[which] == BENCH_CARRIER_NOT_ROUTED) {
				fprintf(stderr,
					"viaudit bench: the %s case's connections were not routed by "
					"viaudit (no conns line in its log)\n",
					bench_case_name(which));
				ctx->failures++;
			}
		}
	}
}

/* The internal roles: `bench --serve KIND` and `bench --measure KIND ADDRESS MODE SIZE SECONDS`. */
static int bench_run_role(int argc, char **argv)
{
	/* A bench that dies (SIGKILL, a crash) must not leave its servers behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	if (strcmp(argv[1], "--serve") == 0 && argc == 3)
		return bench_peer_serve(argv[2]);
	if (strcmp(argv[1], "--measure") == 0 && argc == 7) {
		enum bench_mode mode;
		if (strcmp(argv[4], "pingpong") == 0)
			mode = BENCH_PINGPONG;
		else if (strcmp(argv[4], "stream") == 0)
			mode = BENCH_STREAM;
		else
			return CLI_USAGE;
		char *end;
		unsigned long size = strtoul(argv[5], &end, 10);
		if (*end != '\0')
			return CLI_USAGE;
		double seconds = strtod(argv[6], &end);
		if (*end != '\0')
			return CLI_USAGE;
		return bench_peer_measure(argv[2], argv[3], mode, size, seconds);
	}
	fprintf(stderr, "viaudit bench: bad internal command '%s'\n", argv[1]);
	return CLI_USAGE;
}

int cli_bench(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--serve") == 0 || strcmp(argv[1], "--measure") == 0))
		return bench_run_role(argc, argv);

	static const struct option options[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool quick = false, json = false;
	const char *plot = NULL;
	int opt;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'q':
			quick = true;
			break;
		case 'j':
			json = true;
			break;
		case 'P':
			plot = optarg;
			break;
		case 'h':
			bench_print_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "viaudit bench: option '%s' needs an argument\n",
				argv[optind - 1]);
			bench_print_usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "viaudit bench: unknown option '%s'\n", argv[optind - 1]);
			bench_print_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "viaudit bench: unexpected argument '%s'\n", argv[optind]);
		bench_print_usage(stderr);
		return CLI_USAGE;
	}

	/* A server or client that dies must not kill the bench through a pipe it shares. */
	signal(SIGPIPE, SIG_IGN);
	struct bench_context *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		fputs("viaudit bench: out of memory\n", stderr);
		return CLI_USER_ERROR;
	}
	ctx->seconds = quick ? BENCH_QUICK_SECONDS : BENCH_SECONDS;
	ctx->progress = isatty(STDERR_FILENO);
	ctx->report.seconds = ctx->seconds;
	ctx->report.cpus = sysconf(_SC_NPROCESSORS_ONLN);
	bench_read_load(ctx->report.load_before, sizeof(ctx->report.load_before));
	ctx->report.busy_cpus = bench_measure_busy_cpus(ctx->report.cpus);

	int status = CLI_USER_ERROR;
	if (bench_prepare(ctx) == 0) {
		bench_measure_all(ctx);
		bench_read_load(ctx->report.load_after, sizeof(ctx->report.load_after));
		if (json)
			bench_report_print_json(stdout, &ctx->report);
		else
			bench_report_print_table(stdout, &ctx->report);
		fflush(stdout);
		if (plot) {
			int err = bench_report_plot(&ctx->report, plot, ctx->workdir);
			if (err == -ENOENT)
				fputs("viaudit bench: gnuplot is not installed (apt-get install "
				      "gnuplot-nox); no plot drawn\n",
				      stderr);
			else if (err < 0)
				fprintf(stderr, "viaudit bench: gnuplot could not draw %s\n", plot);
			else if (!json)
				printf("plot: %s\n", plot);
		}
		status = ctx->failures == 0 ? CLI_OK : CLI_USER_ERROR;
		if (ctx->failures > 0)
			fprintf(stderr, "viaudit bench: %d part(s) could not be measured (see above)\n",
				ctx->failures);
	} else {
		fputs("viaudit bench: could not measure\n", stderr);
	}
	bench_stop_servers(ctx);
	if (ctx->workdir[0])
		bench_remove_workdir(ctx);
	free(ctx);
	return status;
}
