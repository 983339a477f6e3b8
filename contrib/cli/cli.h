/* The subcommands of the viaudit command, each called with argv[0] set to its own name. */
#ifndef VIAUDIT_CLI_H
#define VIAUDIT_CLI_H

/* Exit statuses of the contract (DESIGN.md, "The command"). */
enum cli_status {
	CLI_OK = 0,
	CLI_USER_ERROR = 1, /* bad policy, missing program, ...: one clear line on stderr */
	CLI_USAGE = 2,      /* bad usage */
};

/*
 * Each subcommand takes the arguments after `viaudit` (argv[0] is the subcommand's name)
 * and returns the process's exit status. `run` does not return when the program starts:
 * it execs the program, whose status becomes viaudit's.
 */
int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_trace(int argc, char **argv);
int cli_stat(int argc, char **argv);

/*
 * run.c: finds libviaudit.so as `viaudit run` does and stores its absolute path in `module`
 * (PATH_MAX bytes). Prints why on failure. Returns 0, or -errno.
 */
int run_find_module(char *module);

#endif
