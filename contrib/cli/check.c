/* `viaudit check`: parse policy files and report every diagnostic, compiler style. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <viaudit/policy.h>

#include "cli.h"

static void check_print_usage(FILE *out)
{
	fputs("usage: viaudit check POLICY...\n"
	      "\n"
	      "Parse each POLICY and print its errors and warnings as FILE:LINE:COL: MESSAGE on\n"
	      "stderr, and \"FILE: ok (N routes, M traces)\" on stdout for each file without\n"
	      "errors. Exit 0 when no file has errors (warnings are allowed), 1 otherwise.\n",
	      out);
}

/* Checks one file. Returns 0 when it has no errors, -1 otherwise. */
static int check_file(const char *path)
{
	struct vi_policy *policy = vi_policy_load(path);
	if (!policy) {
		fprintf(stderr, "viaudit check: %s: out of memory\n", path);
		return -1;
	}
	/* Diagnostics go straight to fd 2; keep them in order with what stdio has buffered. */
	fflush(stdout);
	fflush(stderr);
	vi_policy_print_diagnostics(policy, STDERR_FILENO);
	int result = 0;
	if (policy->nerrors == 0) {
		printf("%s: ok (%zu route%s, %zu trace%s)\n", path, policy->nroutes,
		       policy->nroutes == 1 ? "" : "s", policy->ntraces,
		       policy->ntraces == 1 ? "" : "s");
	} else {
		result = -1;
	}
	vi_policy_free(policy);
	return result;
}

int cli_check(int argc, char **argv)
{
	int first = 1;
	if (first < argc && strcmp(argv[first], "--") == 0) {
		first++;
	} else if (first < argc && (strcmp(argv[first], "-h") == 0 ||
				    strcmp(argv[first], "--help") == 0)) {
		check_print_usage(stdout);
		return CLI_OK;
	} else if (first < argc && argv[first][0] == '-' && argv[first][1] != '\0') {
		fprintf(stderr, "viaudit check: unknown option '%s'\n", argv[first]);
		check_print_usage(stderr);
		return CLI_USAGE;
	}
	if (first >= argc) {
		fputs("viaudit check: no policy file given\n", stderr);
		check_print_usage(stderr);
		return CLI_USAGE;
	}
	int status = CLI_OK;
	for (int i = first; i < argc; i++) {
		if (check_file(argv[i]) < 0)
			status = CLI_USER_ERROR;
	}
	fflush(stdout);
	return status;
}
