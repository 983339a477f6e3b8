/* `viaudit run`: check the policy, set LD_AUDIT and the VIAUDIT_* variables, exec the program. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <viaudit/policy.h>

#include "cli.h"
#include "vi_config.h"

/* The install's bindir relative to its prefix; the build passes it, "bin" is meson's default. */
#ifndef VI_BINDIR_REL
#define VI_BINDIR_REL "bin"
#endif

#define RUN_MODULE_NAME "libviaudit.so"

static void run_print_usage(FILE *out)
{
	fputs("usage: viaudit run [-p POLICY] [-l LOG] -- PROGRAM [ARGS...]\n"
	      "\n"
	      "Run PROGRAM with LD_AUDIT set to libviaudit.so, so that the objects POLICY selects\n"
	      "have their socket calls rebound. run execs PROGRAM and so exits with its status.\n"
	      "\n"
	      "  -p, --policy POLICY  check POLICY (exit 1 on errors), then set VIAUDIT_POLICY to it;\n"
	      "                       without -p the module searches for PROG.policy itself\n"
	      "  -l, --log LOG        set VIAUDIT_LOG: a comma list of routes, conns, calls, debug,\n"
	      "                       trace, all\n"
	      "  -h, --help           print this help\n"
	      "\n"
	      "VIAUDIT_MODULE, when set, names the libviaudit.so to use.\n",
	      out);
}

/* Joins a directory and a relative path into buf; returns 0, or -ENAMETOOLONG. */
static int run_join_path(char *buf, size_t size, const char *dir, const char *rest)
{
	int n = snprintf(buf, size, "%s/%s", dir, rest);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Canonicalises `candidate` into `out` (PATH_MAX bytes) when it names an existing file.
 * Returns 0, or -errno.
 */
static int run_try_module(const char *candidate, char *out)
{
	char resolved[PATH_MAX];
	if (!realpath(candidate, resolved))
		return -errno;
	struct stat st;
	if (stat(resolved, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	strcpy(out, resolved);
	return 0;
}

/*
 * Whether `dir` (absolute, canonical) is an install's bindir. Stores the prefix in `prefix`
 * (PATH_MAX bytes) when it is.
 */
static bool run_dir_is_bindir(const char *dir, char *prefix)
{
	const char *bindir = VI_BINDIR_REL;
	size_t dir_len = strlen(dir);
	size_t bin_len = strlen(bindir);
	if (bindir[0] == '/') {
		/* An absolute bindir outside the prefix: only the configured prefix can be meant. */
		if (strcmp(dir, bindir) != 0)
			return false;
		strcpy(prefix, VI_PREFIX);
		return true;
	}
	if (dir_len <= bin_len + 1 || dir[dir_len - bin_len - 1] != '/' ||
	    strcmp(dir + dir_len - bin_len, bindir) != 0)
		return false;
	size_t prefix_len = dir_len - bin_len - 1;
	memcpy(prefix, dir, prefix_len);
	prefix[prefix_len] = '\0';
	if (prefix_len == 0)
		strcpy(prefix, "/");
	return true;
}

/*
 * Finds the absolute path of libviaudit.so and stores it in `module` (PATH_MAX bytes):
 * VIAUDIT_MODULE when set; else, for an installed command (PREFIX/bin/viaudit),
 * PREFIX/VI_LIBDIR_REL/libviaudit.so, so that an install works wherever its prefix is;
 * else, for the command in a build tree (BUILD/contrib/cli/viaudit), BUILD/audit/.
 * Prints why on failure. Returns 0, or -errno.
 */
int run_find_module(char *module)
{
	const char *env = getenv("VIAUDIT_MODULE");
	if (env && env[0]) {
		int err = run_try_module(env, module);
		if (err < 0)
			fprintf(stderr, "viaudit run: VIAUDIT_MODULE=%s: %s\n", env, strerror(-err));
		return err;
	}

	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		int err = -errno;
		fprintf(stderr, "viaudit run: cannot find my own executable (/proc/self/exe): %s\n",
			strerror(-err));
		return err;
	}
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	const char *dir = exe[0] ? exe : "/";

	char candidates[2][PATH_MAX];
	size_t ncandidates = 0;
	char prefix[PATH_MAX];
	if (run_dir_is_bindir(dir, prefix)) {
		const char *libdir = VI_LIBDIR_REL;
		char libdir_abs[PATH_MAX];
		if (libdir[0] == '/')
			snprintf(libdir_abs, sizeof(libdir_abs), "%s", libdir);
		else if (run_join_path(libdir_abs, sizeof(libdir_abs), prefix, libdir) < 0)
			return -ENAMETOOLONG;
		if (run_join_path(candidates[ncandidates++], PATH_MAX, libdir_abs,
				  RUN_MODULE_NAME) < 0)
			return -ENAMETOOLONG;
	} else {
		if (run_join_path(candidates[ncandidates++], PATH_MAX, dir,
				  "../../audit/" RUN_MODULE_NAME) < 0)
			return -ENAMETOOLONG;
		/* The build tree's own path, for a build-tree command that was copied elsewhere. */
		snprintf(candidates[ncandidates++], PATH_MAX, "%s/%s", VI_BUILD_AUDIT_DIR,
			 RUN_MODULE_NAME);
	}
	for (size_t i = 0; i < ncandidates; i++) {
		if (run_try_module(candidates[i], module) == 0)
			return 0;
	}
	fprintf(stderr, "viaudit run: cannot find %s; looked for %s%s%s (set VIAUDIT_MODULE to its path)\n",
		RUN_MODULE_NAME, candidates[0], ncandidates > 1 ? " and " : "",
		ncandidates > 1 ? candidates[1] : "");
	return -ENOENT;
}

/*
 * Finds PROGRAM as execvp will: as given when it contains a slash, else in each PATH entry.
 * Stores the path found in `path` (PATH_MAX bytes). Returns 0, -ENOENT when there is no such
 * file, or -EACCES when one exists but cannot be executed.
 */
static int run_resolve_program(const char *program, char *path)
{
	if (program[0] == '\0')
		return -ENOENT;
	if (strchr(program, '/')) {
		if (strlen(program) >= PATH_MAX)
			return -ENAMETOOLONG;
		strcpy(path, program);
		return access(path, X_OK) == 0 ? 0 : -errno;
	}
	const char *search = getenv("PATH");
	if (!search)
		search = "/bin:/usr/bin"; /* glibc's execvp default (confstr _CS_PATH) */
	int result = -ENOENT;
	for (const char *p = search;; p++) {
		const char *end = strchrnul(p, ':');
		size_t len = (size_t)(end - p);
		/* An empty PATH entry means the current directory. */
		int n = len == 0 ? snprintf(path, PATH_MAX, "%s", program)
				 : snprintf(path, PATH_MAX, "%.*s/%s", (int)len, p, program);
		if (n > 0 && n < PATH_MAX) {
			struct stat st;
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(path, X_OK) == 0)
					return 0;
				result = -EACCES;
			}
		}
		if (*end == '\0')
			break;
		p = end;
	}
	return result;
}

/* Whether `word` (len bytes) is a VIAUDIT_LOG category. */
static bool run_is_log_word(const char *word, size_t len)
{
	static const char *const words[] = { "routes", "conns", "calls", "debug", "trace", "all" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strlen(words[i]) == len && memcmp(words[i], word, len) == 0)
			return true;
	}
	return false;
}

/* Checks a -l value; prints the first bad word. Returns 0, or -EINVAL. */
static int run_check_log(const char *log)
{
	const char *p = log;
	for (;;) {
		const char *end = strchrnul(p, ',');
		if (!run_is_log_word(p, (size_t)(end - p))) {
			fprintf(stderr,
				"viaudit run: -l: unknown log category '%.*s' (routes, conns, calls, debug, trace, all)\n",
				(int)(end - p), p);
			return -EINVAL;
		}
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

/* Whether the colon list `list` already holds `item`. */
static bool run_list_contains(const char *list, const char *item)
{
	size_t len = strlen(item);
	for (const char *p = list;;) {
		const char *end = strchrnul(p, ':');
		if ((size_t)(end - p) == len && memcmp(p, item, len) == 0)
			return true;
		if (*end == '\0')
			return false;
		p = end + 1;
	}
}

/*
 * Widens the dynamic linker's spare static TLS. The audit module brings a second libc into
 * the process, and its TLS takes most of the 512 spare bytes glibc keeps by default, so a
 * library that needs initial-exec TLS and is loaded afterwards (libjemalloc, which
 * redis-benchmark links) would fail with "cannot allocate memory in static TLS block".
 * A tunable already set by the user wins. Returns 0 or -errno.
 */
static int run_set_static_tls(void)
{
	static const char tunable[] = "glibc.rtld.optional_static_tls=16384";
	const char *old = getenv("GLIBC_TUNABLES");
	if (old != NULL && strstr(old, "glibc.rtld.optional_static_tls") != NULL)
		return 0;
	char value[4096];
	int n = snprintf(value, sizeof(value), "%s%s%s", old && old[0] ? old : "",
			 old && old[0] ? ":" : "", tunable);
	if (n < 0 || (size_t)n >= sizeof(value))
		return -E2BIG;
	return setenv("GLIBC_TUNABLES", value, 1) == 0 ? 0 : -errno;
}

/*
 * Sets LD_AUDIT to `module`, appended with ':' to an LD_AUDIT already in the environment
 * (unless it is there already). Returns 0, or -errno.
 */
static int run_set_ld_audit(const char *module)
{
	const char *old = getenv("LD_AUDIT");
	if (!old || !old[0] || run_list_contains(old, module))
		return setenv("LD_AUDIT", old && old[0] ? old : module, 1) == 0 ? 0 : -errno;
	size_t size = strlen(old) + 1 + strlen(module) + 1;
	char *value = malloc(size);
	if (!value)
		return -ENOMEM;
	snprintf(value, size, "%s:%s", old, module);
	int err = setenv("LD_AUDIT", value, 1) == 0 ? 0 : -errno;
	free(value);
	return err;
}

/*
 * Loads the policy at `path`; when it has errors, prints its diagnostics. Warnings alone are
 * left to the module, which prints them with `routes` or `debug` logging (and to `viaudit
 * check`). Returns 0 when it has no errors, else -EINVAL (or -ENOMEM).
 */
static int run_check_policy(const char *path)
{
	struct vi_policy *policy = vi_policy_load(path);
	if (!policy) {
		fprintf(stderr, "viaudit run: %s: out of memory\n", path);
		return -ENOMEM;
	}
	size_t nerrors = policy->nerrors;
	if (nerrors > 0) {
		fflush(stderr);
		vi_policy_print_diagnostics(policy, STDERR_FILENO);
	}
	vi_policy_free(policy);
	if (nerrors > 0) {
		fprintf(stderr, "viaudit run: %s: %zu error%s; the program was not started\n", path,
			nerrors, nerrors == 1 ? "" : "s");
		return -EINVAL;
	}
	return 0;
}

/* Sets VIAUDIT_POLICY to the absolute path of `path`. Returns 0, or -errno. */
static int run_set_policy(const char *path)
{
	char absolute[PATH_MAX];
	if (!realpath(path, absolute))
		return -errno;
	return setenv("VIAUDIT_POLICY", absolute, 1) == 0 ? 0 : -errno;
}

/*
 * Warns when the program is setuid or setgid. The kernel runs it in secure mode (AT_SECURE)
 * when that changes its user or group, and then ld.so ignores LD_AUDIT entries that contain
 * a slash, so the module is not loaded.
 */
static void run_warn_setid(const char *program, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !(st.st_mode & (S_ISUID | S_ISGID)))
		return;
	bool secure = ((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
		      ((st.st_mode & S_ISGID) && st.st_gid != getgid());
	if (secure)
		fprintf(stderr,
			"viaudit run: warning: %s is setuid/setgid: the dynamic linker ignores "
			"LD_AUDIT paths with a slash in secure mode; nothing will be rebound\n",
			program);
	else
		fprintf(stderr,
			"viaudit run: warning: %s is setuid/setgid: run by you it keeps LD_AUDIT, "
			"but run by another user the dynamic linker ignores LD_AUDIT paths with a "
			"slash in secure mode and nothing is rebound\n",
			program);
}

int cli_run(int argc, char **argv)
{
	static const struct option options[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy = NULL;
	const char *log = NULL;
	int opt;

	opterr = 0;
	optind = 1;
	/* '+': stop at the program's name, so its own options are left to it. */
	while ((opt = getopt_long(argc, argv, "+:p:l:h", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			policy = optarg;
			break;
		case 'l':
			log = optarg;
			break;
		case 'h':
			run_print_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "viaudit run: option '%s' needs an argument\n",
				argv[optind - 1]);
			run_print_usage(stderr);
			return CLI_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "viaudit run: unknown option '-%c'\n", optopt);
			else
				fprintf(stderr, "viaudit run: unknown option '%s'\n", argv[optind - 1]);
			run_print_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		fputs("viaudit run: no program given\n", stderr);
		run_print_usage(stderr);
		return CLI_USAGE;
	}
	if (log && run_check_log(log) < 0)
		return CLI_USAGE;

	char **program_argv = argv + optind;
	const char *program = program_argv[0];

	if (policy) {
		if (run_check_policy(policy) < 0)
			return CLI_USER_ERROR;
		int err = run_set_policy(policy);
		if (err < 0) {
			fprintf(stderr, "viaudit run: %s: %s\n", policy, strerror(-err));
			return CLI_USER_ERROR;
		}
	}

	char program_path[PATH_MAX];
	int err = run_resolve_program(program, program_path);
	if (err == -ENOENT) {
		fprintf(stderr, "viaudit run: %s: No such file or directory\n", program);
		return 127;
	}
	if (err < 0) {
		fprintf(stderr, "viaudit run: %s: %s\n", program, strerror(-err));
		return 126;
	}
	run_warn_setid(program, program_path);

	char module[PATH_MAX];
	if (run_find_module(module) < 0)
		return CLI_USER_ERROR;
	err = run_set_ld_audit(module);
	if (err == 0)
		err = run_set_static_tls();
	if (err == 0 && log)
		err = setenv("VIAUDIT_LOG", log, 1) == 0 ? 0 : -errno;
	if (err < 0) {
		fprintf(stderr, "viaudit run: cannot set the environment: %s\n", strerror(-err));
		return CLI_USER_ERROR;
	}

	fflush(NULL);
	execvp(program, program_argv);
	err = errno;
	fprintf(stderr, "viaudit run: %s: %s\n", program, strerror(err));
	return err == ENOENT ? 127 : 126;
}
