/* `viaudit trace`: run a program like `viaudit run`, with the policy's trace rules in force. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <viaudit/policy.h>

#include "cli.h"

static void trace_print_usage(FILE *out)
{
	fputs("usage: viaudit trace [-p POLICY] [-o FILE] [--json] -- PROGRAM [ARGS...]\n"
	      "\n"
	      "Run PROGRAM as `viaudit run` does, and print one line per call that a `trace\n"
	      "CALLER SYMBOL,...` rule of the policy names: pid.tid, calling object, symbol,\n"
	      "decoded arguments, result, errno name, the transport that served a routed call,\n"
	      "and the duration. Calls no rule names are not slowed down. trace execs PROGRAM\n"
	      "and so exits with its status.\n"
	      "\n"
	      "  -p, --policy POLICY  check POLICY (exit 1 on errors) and use it; without -p the\n"
	      "                       module searches for PROG.policy itself\n"
	      "  -o, --output FILE    write the trace (and viaudit's other messages) to FILE\n"
	      "                       instead of stderr\n"
	      "      --json           one JSON object per call instead of text\n"
	      "  -h, --help           print this help\n"
	      "\n"
	      "Functions other than the socket functions need prototypes: `set prototypes FILE`\n"
	      "in the policy, or VIAUDIT_PROTOTYPES=FILE[:FILE...]. See viaudit.policy(5).\n",
	      out);
}

/* Loads `path`; prints its errors, and a warning when it has no trace rules. Returns 0 or -errno. */
static int trace_check_policy(const char *path)
{
	struct vi_policy *policy = vi_policy_load(path);
	if (policy == NULL) {
		fprintf(stderr, "viaudit trace: %s: out of memory\n", path);
		return -ENOMEM;
	}
	size_t nerrors = policy->nerrors, ntraces = policy->ntraces;
	if (nerrors > 0) {
		fflush(stderr);
		vi_policy_print_diagnostics(policy, STDERR_FILENO);
	}
	vi_policy_free(policy);
	if (nerrors > 0) {
		fprintf(stderr, "viaudit trace: %s: %zu error%s; the program was not started\n", path,
			nerrors, nerrors == 1 ? "" : "s");
		return -EINVAL;
	}
	if (ntraces == 0)
		fprintf(stderr, "viaudit trace: warning: %s has no trace rules: nothing will be "
			"traced\n", path);
	return 0;
}

/* Adds `trace` to VIAUDIT_LOG, keeping the categories already asked for. Returns 0 or -errno. */
static int trace_set_log(void)
{
	const char *old = getenv("VIAUDIT_LOG");
	char value[512];
	int n = snprintf(value, sizeof(value), "%s%strace", old && old[0] ? old : "",
			 old && old[0] ? "," : "");
	if (n < 0 || (size_t)n >= sizeof(value))
		return -E2BIG;
	return setenv("VIAUDIT_LOG", value, 1) == 0 ? 0 : -errno;
}

/*
 * Creates (or empties) FILE and points VIAUDIT_LOG_FILE at its absolute path; the module
 * appends to it, so the processes the program starts add to the same trace. Returns 0 or -errno.
 */
static int trace_set_output(const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	char absolute[PATH_MAX];
	if (realpath(file, absolute) == NULL)
		return -errno;
	return setenv("VIAUDIT_LOG_FILE", absolute, 1) == 0 ? 0 : -errno;
}

int cli_trace(int argc, char **argv)
{
	enum { OPTION_JSON = 256 };
	static const struct option options[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, OPTION_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy = NULL, *output = NULL;
	bool json = false;
	int opt;

	opterr = 0;
	optind = 1;
	/* '+': stop at the program's name, so its own options are left to it. */
	while ((opt = getopt_long(argc, argv, "+:p:o:h", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			policy = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case OPTION_JSON:
			json = true;
			break;
		case 'h':
			trace_print_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "viaudit trace: option '%s' needs an argument\n",
				argv[optind - 1]);
			trace_print_usage(stderr);
			return CLI_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "viaudit trace: unknown option '-%c'\n", optopt);
			else
				fprintf(stderr, "viaudit trace: unknown option '%s'\n", argv[optind - 1]);
			trace_print_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		fputs("viaudit trace: no program given\n", stderr);
		trace_print_usage(stderr);
		return CLI_USAGE;
	}
	if (policy != NULL && trace_check_policy(policy) < 0)
		return CLI_USER_ERROR;
	int err = 0;
	if (output != NULL && (err = trace_set_output(output)) < 0) {
		fprintf(stderr, "viaudit trace: -o %s: %s\n", output, strerror(-err));
		return CLI_USER_ERROR;
	}
	err = trace_set_log();
	if (err == 0)
		err = setenv("VIAUDIT_TRACE_FORMAT", json ? "json" : "text", 1) == 0 ? 0 : -errno;
	if (err < 0) {
		fprintf(stderr, "viaudit trace: cannot set the environment: %s\n", strerror(-err));
		return CLI_USER_ERROR;
	}

	/*
	 * The rest is `viaudit run`'s: find the program and the module, set LD_AUDIT, exec.
	 * Its messages (a program that does not exist, ...) say "viaudit run".
	 */
	int program_argc = argc - optind;
	char **run_argv = calloc((size_t)program_argc + 5, sizeof(*run_argv));
	if (run_argv == NULL) {
		fputs("viaudit trace: out of memory\n", stderr);
		return CLI_USER_ERROR;
	}
	int n = 0;
	run_argv[n++] = "run";
	if (policy != NULL) {
		run_argv[n++] = "-p";
		run_argv[n++] = (char *)policy;
	}
	run_argv[n++] = "--";
	for (int i = 0; i < program_argc; i++)
		run_argv[n++] = argv[optind + i];
	int status = cli_run(n, run_argv);
	free(run_argv);
	return status;
}
