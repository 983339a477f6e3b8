/* The viaudit command's entry point: global options and dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vi_config.h"

struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
};

static const struct cli_command cli_commands[] = {
	{ "run", cli_run },
	{ "check", cli_check },
	{ "explain", cli_explain },
	{ "bench", cli_bench },
	{ "trace", cli_trace },
	{ "stat", cli_stat },
};

static void cli_print_usage(FILE *out)
{
	fputs("usage: viaudit COMMAND [ARGS...]\n"
	      "       viaudit --help | --version\n"
	      "\n"
	      "Rebind the socket calls of selected shared objects through the dynamic linker's\n"
	      "audit interface (LD_AUDIT), as a policy file says.\n"
	      "\n"
	      "commands:\n"
	      "  run [-p POLICY] [-l LOG] -- PROGRAM [ARGS...]\n"
	      "                      run PROGRAM with LD_AUDIT set to libviaudit.so\n"
	      "  check POLICY...     validate policy files; exit 0, or 1 with their errors\n"
	      "  explain [-p POLICY] PROGRAM\n"
	      "                      which objects import which socket symbols (PLT or GOT),\n"
	      "                      and what the policy does with each\n"
	      "  bench [--quick] [--json] [--plot FILE.png]\n"
	      "                      same-host latency and throughput: viaudit shm against kernel\n"
	      "                      TCP loopback, AF_UNIX and a raw shared-memory spin\n"
	      "  trace [-p POLICY] [-o FILE] [--json] -- PROGRAM [ARGS...]\n"
	      "                      run PROGRAM and print the calls the policy's trace rules\n"
	      "                      name, with their arguments, result and transport\n"
	      "  stat [--watch] [--json] [PID]\n"
	      "                      live connections of interposed processes: the processes,\n"
	      "                      or one's sockets with transport, fallback reason and bytes\n"
	      "\n"
	      "LOG is a comma list of routes, conns, calls, debug, trace, all (sets VIAUDIT_LOG).\n"
	      "`viaudit COMMAND --help` describes one command. See viaudit(1) and viaudit.policy(5).\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_print_usage(stderr);
		return CLI_USAGE;
	}
	const char *command = argv[1];
	if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
	    strcmp(command, "help") == 0) {
		cli_print_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(command, "--version") == 0) {
		printf("viaudit %s\n", VI_VERSION);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
		if (strcmp(command, cli_commands[i].name) == 0)
			return cli_commands[i].main(argc - 1, argv + 1);
	}
	if (command[0] == '-')
		fprintf(stderr, "viaudit: unknown option '%s'\n", command);
	else
		fprintf(stderr, "viaudit: unknown command '%s'\n", command);
	fputs("Try 'viaudit --help'.\n", stderr);
	return CLI_USAGE;
}
