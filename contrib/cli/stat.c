/* `viaudit stat`: the live connections of interposed processes, read from the stats segments they publish. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <viaudit/stats.h>

#include "cli.h"

/*
 * Everything here reads files: the segments in VI_STATS_DIR and /proc/PID/{stat,maps}.
 * Nothing asks the process, so a process that is busy, blocked or stopped is shown the same.
 * A segment is stale -- its process died, its PID was reused, or its process exec'd -- when
 * its PID is gone, /proc/PID/stat gives another start time, or /proc/PID/maps no longer
 * maps the file; a stale segment is skipped and removed.
 */

#define STAT_PREFIX "viaudit stat: "
#define STAT_READ_TRIES 10000 /* looks at a slot a writer is inside before giving up on it */

struct stat_options {
	bool watch;
	bool json;
	pid_t pid; /* 0: every process */
};

/* A live segment, mapped read-only. */
struct stat_segment {
	pid_t pid;
	const struct vi_stats_header *header;
	size_t size;
};

/* One process's slots, sorted by fd. */
struct stat_table {
	struct vi_stats_snapshot *rows;
	size_t count;
	size_t busy; /* slots a writer stayed inside */
};

static volatile sig_atomic_t stat_interrupted;

#define STAT_USAGE "usage: viaudit stat [--watch] [--json] [PID]\n"

/* For bad usage: the one line, and where the rest is. */
static void stat_usage_error(void)
{
	fputs(STAT_USAGE "Try 'viaudit stat --help'.\n", stderr);
}

static void stat_usage(FILE *out)
{
	fputs(STAT_USAGE
	      "\n"
	      "Without PID, list the interposed processes of this user that have routed sockets:\n"
	      "PID, program, and their connections by transport. With PID, list that process's\n"
	      "sockets: fd, state, local and peer address, bytes in and out, fork handoffs,\n"
	      "reconnects, and the transport (shm, tcp, or tcp with the reason it fell back).\n"
	      "The processes publish these in " VI_STATS_DIR "/" VI_STATS_PREFIX "PID; they are\n"
	      "never asked anything, so a busy or blocked process is shown all the same.\n"
	      "\n"
	      "  --watch     show it again every second until interrupted\n"
	      "  --json      one JSON object per snapshot, on one line\n"
	      "  -h, --help  show this help\n"
	      "\n"
	      "Exit status: 0, 1 when PID is not an interposed process or does not exist, 2 for bad\n"
	      "usage.\n",
	      out);
}

/* ---- segments ---- */

/* Reads a small /proc file into buf (NUL-terminated). Returns bytes read or -errno. */
static ssize_t stat_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < size - 1) {
		ssize_t n = read(fd, buf + done, size - 1 - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	buf[done] = '\0';
	return (ssize_t)done;
}

/*
 * Whether /proc/PID/maps has a mapping of the file (dev, ino), or of a file whose path ends
 * in `suffix` when `suffix` is not NULL. Returns 1, 0, or -errno when maps cannot be read.
 */
static int stat_process_maps(pid_t pid, dev_t dev, ino_t ino, const char *suffix)
{
	char path[64], line[PATH_MAX + 128];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *maps = fopen(path, "re");
	if (maps == NULL)
		return -errno;
	int found = 0;
	while (!found && fgets(line, sizeof(line), maps) != NULL) {
		unsigned maj, min;
		unsigned long long inode;
		int name_at = 0;
		if (sscanf(line, "%*s %*s %*s %x:%x %llu %n", &maj, &min, &inode, &name_at) < 3)
			continue;
		if (suffix != NULL) {
			char *name = line + name_at, *end = strchr(name, '\n');
			if (end != NULL)
				*end = '\0';
			size_t len = strlen(name), want = strlen(suffix);
			found = len >= want && strcmp(name + len - want, suffix) == 0;
		} else {
			found = inode == (unsigned long long)ino && makedev(maj, min) == dev;
		}
	}
	fclose(maps);
	return found;
}

/* Whether PID exists (a process of another user counts). */
static bool stat_process_exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

/* Whether the segment's process is the one that made it, and still maps it. */
static bool stat_segment_live(const struct vi_stats_header *h, pid_t pid, const struct stat *st)
{
	if (h->pid != pid || !stat_process_exists(pid))
		return false;
	char path[64], text[1024];
	uint64_t start;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (h->start_time != 0 && stat_read_file(path, text, sizeof(text)) > 0 &&
	    vi_stats_parse_start_time(text, &start) == 0 && start != h->start_time)
		return false; /* the PID was reused */
	/* Unreadable maps (another user's process, seen by root): not proof of anything. */
	return stat_process_maps(pid, st->st_dev, st->st_ino, NULL) != 0;
}

/* Removes a stale segment, unless the name now means another file (a new one of the PID). */
static void stat_remove_stale(const char *path, const struct stat *st)
{
	struct stat now;
	if (lstat(path, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev)
		unlink(path);
}

/*
 * Opens the segment of pid. Returns 0 with `seg` mapped, -ENOENT when there is none (a
 * stale one is removed and counts as none), or another -errno (-EAGAIN: still being made).
 */
static int stat_segment_open(pid_t pid, struct stat_segment *seg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s%d", VI_STATS_DIR, VI_STATS_PREFIX, (int)pid);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;
	struct stat st;
	int err = 0;
	void *map = MAP_FAILED;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct vi_stats_header))
		err = -EPROTO;
	else if ((map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
		err = -errno;
	close(fd);
	if (err < 0) {
		/* An empty file whose process is gone was never finished: stale too. */
		if (err == -EPROTO && !stat_process_exists(pid))
			stat_remove_stale(path, &st);
		return err == -EPROTO ? -ENOENT : err;
	}
	err = vi_stats_header_check(map, (size_t)st.st_size);
	if (err == 0 && !stat_segment_live(map, pid, &st))
		err = -ESTALE;
	if (err < 0) {
		munmap(map, (size_t)st.st_size);
		if (err == -ESTALE || !stat_process_exists(pid))
			stat_remove_stale(path, &st);
		return err == -EAGAIN && stat_process_exists(pid) ? -EAGAIN : -ENOENT;
	}
	seg->pid = pid;
	seg->header = map;
	seg->size = (size_t)st.st_size;
	return 0;
}

static void stat_segment_close(struct stat_segment *seg)
{
	munmap((void *)(uintptr_t)seg->header, seg->size);
}

static int stat_compare_rows(const void *a, const void *b)
{
	const struct vi_stats_snapshot *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Copies every slot in use. Returns 0 or -ENOMEM. */
static int stat_table_read(const struct stat_segment *seg, struct stat_table *table)
{
	const struct vi_stats_header *h = seg->header;
	uint32_t high = atomic_load_explicit(&h->slot_high, memory_order_acquire);
	if (high > h->slot_count)
		high = h->slot_count;
	memset(table, 0, sizeof(*table));
	table->rows = calloc(high > 0 ? high : 1, sizeof(*table->rows));
	if (table->rows == NULL)
		return -ENOMEM;
	const struct vi_stats_slot *slots = vi_stats_slots(h);
	for (uint32_t i = 0; i < high; i++) {
		int r = vi_stats_slot_read(&slots[i], &table->rows[table->count], STAT_READ_TRIES);
		if (r == 1)
			table->count++;
		else if (r < 0)
			table->busy++;
	}
	qsort(table->rows, table->count, sizeof(*table->rows), stat_compare_rows);
	return 0;
}

/* ---- what a row means ---- */

static const char *stat_state_name(const struct vi_stats_snapshot *row)
{
	uint32_t s = row->state;
	if (row->kind == VI_STATS_LISTENER || (s & VI_STATS_LISTENING))
		return "listening";
	if (s & VI_STATS_RESET)
		return "reset";
	if ((s & VI_STATS_SHUT_WR) && (s & VI_STATS_PEER_EOF))
		return "closed";
	if (s & VI_STATS_SHUT_WR)
		return "half-closed-local";
	if (s & VI_STATS_PEER_EOF)
		return "half-closed-peer";
	if (s & VI_STATS_CONNECTING)
		return "connecting";
	return "established";
}

/* Counts of one process's sockets. */
struct stat_summary {
	unsigned connections, listening, shm, tcp, fallback, other;
};

static void stat_summarize(const struct stat_table *table, struct stat_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (size_t i = 0; i < table->count; i++) {
		const struct vi_stats_snapshot *row = &table->rows[i];
		if (row->kind == VI_STATS_LISTENER) {
			sum->listening++;
			continue;
		}
		sum->connections++;
		if (row->reason[0] != '\0')
			sum->fallback++;
		else if (strcmp(row->transport, "shm") == 0)
			sum->shm++;
		else if (strcmp(row->transport, "tcp") == 0)
			sum->tcp++;
		else
			sum->other++;
	}
}

/* ---- JSON ---- */

static void stat_json_string(FILE *out, const char *text)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void stat_json_row(FILE *out, const struct vi_stats_snapshot *row)
{
	bool listener = row->kind == VI_STATS_LISTENER;
	fprintf(out, "{\"fd\":%" PRId32 ",\"kind\":\"%s\",\"state\":\"%s\",\"local\":", row->fd,
		listener ? "listener" : "stream", stat_state_name(row));
	stat_json_string(out, row->local);
	fputs(",\"peer\":", out);
	if (listener)
		fputs("null", out);
	else
		stat_json_string(out, row->peer);
	fputs(",\"transport\":", out);
	stat_json_string(out, row->transport);
	fprintf(out, ",\"fallback\":%s,\"reason\":", row->reason[0] != '\0' ? "true" : "false");
	if (row->reason[0] != '\0')
		stat_json_string(out, row->reason);
	else
		fputs("null", out);
	fprintf(out,
		",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"handoffs\":%" PRIu64
		",\"reconnects\":%" PRIu64 ",\"caller\":",
		row->bytes_in, row->bytes_out, row->handoffs, row->reconnects);
	stat_json_string(out, row->caller);
	fputs(",\"rule\":", out);
	stat_json_string(out, row->rule);
	fprintf(out, ",\"opened_ms\":%" PRIu64 "}", row->opened_ms);
}

/* ---- one process ---- */

/* Returns CLI_OK, or CLI_USER_ERROR with the message printed. */
static int stat_show_process(pid_t pid, const struct stat_options *opt)
{
	struct stat_segment seg;
	int err = stat_segment_open(pid, &seg);
	if (err == -EAGAIN) { /* being made this instant: look once more */
		struct timespec pause = { 0, 20 * 1000000L };
		nanosleep(&pause, NULL);
		err = stat_segment_open(pid, &seg);
	}
	if (err < 0 && !stat_process_exists(pid)) {
		fprintf(stderr, STAT_PREFIX "%d: no such process\n", (int)pid);
		return CLI_USER_ERROR;
	}
	if (err == -EACCES || err == -EPERM) {
		fprintf(stderr, STAT_PREFIX "%d: permission denied\n", (int)pid);
		return CLI_USER_ERROR;
	}
	if (err < 0) {
		/* Under the audit module but no routed socket yet: a fact, not an error. */
		if (stat_process_maps(pid, 0, 0, "/libviaudit.so") == 1) {
			char path[64], comm[64] = "";
			snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
			stat_read_file(path, comm, sizeof(comm));
			comm[strcspn(comm, "\n")] = '\0';
			if (opt->json) {
				printf("{\"pid\":%d,\"program\":", (int)pid);
				stat_json_string(stdout, comm);
				puts(",\"connections\":[],\"dropped\":0}");
			} else {
				printf("pid %d (%s): interposed, no routed sockets yet\n", (int)pid, comm);
			}
			return CLI_OK;
		}
		fprintf(stderr, STAT_PREFIX "%d: not an interposed process\n", (int)pid);
		return CLI_USER_ERROR;
	}
	struct stat_table table;
	if (stat_table_read(&seg, &table) < 0) {
		stat_segment_close(&seg);
		fprintf(stderr, STAT_PREFIX "out of memory\n");
		return CLI_USER_ERROR;
	}
	const struct vi_stats_header *h = seg.header;
	uint64_t dropped = atomic_load_explicit(&h->dropped, memory_order_relaxed);
	char program[VI_STATS_PROGRAM_MAX];
	memcpy(program, h->program, sizeof(program));
	program[sizeof(program) - 1] = '\0'; /* the file is not trusted to end it */
	struct stat_summary sum;
	stat_summarize(&table, &sum);
	if (opt->json) {
		printf("{\"pid\":%d,\"program\":", (int)pid);
		stat_json_string(stdout, program);
		fputs(",\"connections\":[", stdout);
		for (size_t i = 0; i < table.count; i++) {
			if (i > 0)
				fputc(',', stdout);
			stat_json_row(stdout, &table.rows[i]);
		}
		printf("],\"dropped\":%" PRIu64 "}\n", dropped);
	} else {
		printf("pid %d (%s): %u connection%s, %u listening\n", (int)pid, program,
		       sum.connections, sum.connections == 1 ? "" : "s", sum.listening);
		printf("%-5s %-18s %-22s %-22s %12s %12s %8s %10s  %s\n", "FD", "STATE", "LOCAL",
		       "PEER", "BYTES_IN", "BYTES_OUT", "HANDOFFS", "RECONNECTS", "TRANSPORT");
		for (size_t i = 0; i < table.count; i++) {
			const struct vi_stats_snapshot *row = &table.rows[i];
			bool listener = row->kind == VI_STATS_LISTENER;
			printf("%-5" PRId32 " %-18s %-22s %-22s ", row->fd, stat_state_name(row),
			       row->local, listener ? "-" : row->peer);
			if (listener)
				printf("%12s %12s %8s %10s", "-", "-", "-", "-");
			else
				printf("%12" PRIu64 " %12" PRIu64 " %8" PRIu64 " %10" PRIu64,
				       row->bytes_in, row->bytes_out, row->handoffs, row->reconnects);
			if (row->reason[0] != '\0')
				printf("  %s (%s)\n", row->transport, row->reason);
			else
				printf("  %s\n", row->transport);
		}
		if (dropped > 0)
			printf("%" PRIu64 " socket%s not shown: every slot of the segment was taken\n",
			       dropped, dropped == 1 ? "" : "s");
		if (table.busy > 0)
			printf("%zu slot%s skipped: a writer never left them\n", table.busy,
			       table.busy == 1 ? "" : "s");
	}
	free(table.rows);
	stat_segment_close(&seg);
	return CLI_OK;
}

/* ---- every process ---- */

struct stat_process {
	pid_t pid;
	char program[VI_STATS_PROGRAM_MAX];
	struct stat_summary sum;
	uint64_t dropped;
};

static int stat_compare_processes(const void *a, const void *b)
{
	const struct stat_process *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* The PID in a segment's file name, or 0 when the name is not one. */
static pid_t stat_name_pid(const char *name)
{
	size_t prefix = strlen(VI_STATS_PREFIX);
	if (strncmp(name, VI_STATS_PREFIX, prefix) != 0 || name[prefix] == '\0')
		return 0;
	char *end;
	errno = 0;
	long pid = strtol(name + prefix, &end, 10);
	if (*end != '\0' || errno != 0 || pid <= 0 || pid > INT_MAX ||
	    !isdigit((unsigned char)name[prefix]))
		return 0;
	return (pid_t)pid;
}

static int stat_show_all(const struct stat_options *opt)
{
	DIR *dir = opendir(VI_STATS_DIR);
	struct stat_process *list = NULL;
	size_t count = 0, cap = 0;
	struct dirent *entry;
	while (dir != NULL && (entry = readdir(dir)) != NULL) {
		pid_t pid = stat_name_pid(entry->d_name);
		struct stat_segment seg;
		if (pid == 0 || stat_segment_open(pid, &seg) < 0)
			continue;
		struct stat_table table;
		if (stat_table_read(&seg, &table) == 0) {
			if (count == cap) {
				size_t grown = cap ? cap * 2 : 16;
				struct stat_process *bigger = realloc(list, grown * sizeof(*list));
				if (bigger == NULL) {
					free(table.rows);
					stat_segment_close(&seg);
					break;
				}
				list = bigger;
				cap = grown;
			}
			struct stat_process *p = &list[count++];
			p->pid = pid;
			memcpy(p->program, seg.header->program, sizeof(p->program));
			p->program[sizeof(p->program) - 1] = '\0';
			stat_summarize(&table, &p->sum);
			p->dropped = atomic_load_explicit(&seg.header->dropped, memory_order_relaxed);
			free(table.rows);
		}
		stat_segment_close(&seg);
	}
	if (dir != NULL)
		closedir(dir);
	qsort(list, count, sizeof(*list), stat_compare_processes);
	if (opt->json) {
		fputs("{\"processes\":[", stdout);
		for (size_t i = 0; i < count; i++) {
			const struct stat_process *p = &list[i];
			printf("%s{\"pid\":%d,\"program\":", i > 0 ? "," : "", (int)p->pid);
			stat_json_string(stdout, p->program);
			printf(",\"connections\":%u,\"listening\":%u,\"shm\":%u,\"tcp\":%u,"
			       "\"fallback\":%u,\"dropped\":%" PRIu64 "}",
			       p->sum.connections, p->sum.listening, p->sum.shm, p->sum.tcp + p->sum.other,
			       p->sum.fallback, p->dropped);
		}
		puts("]}");
	} else {
		printf("%-8s %-20s %6s %6s %6s %9s %10s\n", "PID", "PROGRAM", "CONNS", "SHM", "TCP",
		       "FALLBACK", "LISTENING");
		for (size_t i = 0; i < count; i++) {
			const struct stat_process *p = &list[i];
			printf("%-8d %-20s %6u %6u %6u %9u %10u\n", (int)p->pid, p->program,
			       p->sum.connections, p->sum.shm, p->sum.tcp + p->sum.other,
			       p->sum.fallback, p->sum.listening);
		}
	}
	free(list);
	return CLI_OK;
}

/* ---- the command ---- */

static void stat_on_signal(int sig)
{
	stat_interrupted = 1;
}

/* Parses a PID argument: digits only, > 0. Returns it, or 0. */
static pid_t stat_parse_pid(const char *text)
{
	if (text[0] == '\0' || strlen(text) > 10)
		return 0;
	for (const char *p = text; *p != '\0'; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	long pid = strtol(text, NULL, 10);
	return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

static int stat_parse_args(int argc, char **argv, struct stat_options *opt)
{
	const char *pid_text = NULL;
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (!options_done && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
			stat_usage(stdout);
			return -1;
		} else if (!options_done && strcmp(arg, "--watch") == 0) {
			opt->watch = true;
		} else if (!options_done && strcmp(arg, "--json") == 0) {
			opt->json = true;
		} else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
			fprintf(stderr, STAT_PREFIX "unknown option '%s'\n", arg);
			stat_usage_error();
			return CLI_USAGE;
		} else if (pid_text != NULL) {
			fprintf(stderr, STAT_PREFIX "one PID at most ('%s' and '%s')\n", pid_text, arg);
			stat_usage_error();
			return CLI_USAGE;
		} else {
			pid_text = arg;
		}
	}
	if (pid_text != NULL && (opt->pid = stat_parse_pid(pid_text)) == 0) {
		fprintf(stderr, STAT_PREFIX "'%s' is not a process ID\n", pid_text);
		stat_usage_error();
		return CLI_USAGE;
	}
	return 0;
}

int cli_stat(int argc, char **argv)
{
	struct stat_options opt = { 0 };
	int r = stat_parse_args(argc, argv, &opt);
	if (r != 0)
		return r < 0 ? CLI_OK : r;
	if (!opt.watch)
		return opt.pid != 0 ? stat_show_process(opt.pid, &opt) : stat_show_all(&opt);

	struct sigaction sa = { .sa_handler = stat_on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool tty = !opt.json && isatty(STDOUT_FILENO);
	for (unsigned round = 0; !stat_interrupted; round++) {
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (round > 0 && !opt.json)
			fputc('\n', stdout);
		r = opt.pid != 0 ? stat_show_process(opt.pid, &opt) : stat_show_all(&opt);
		fflush(stdout);
		if (r != CLI_OK)
			return r; /* the process went away */
		struct timespec second = { 1, 0 };
		nanosleep(&second, NULL); /* a signal cuts it short */
	}
	return CLI_OK;
}
