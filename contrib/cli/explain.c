/* `viaudit explain`: which objects of a program import which socket symbols, and what the policy does with each. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <viaudit/policy.h>
#include <viaudit/symbols.h>

#include "cli.h"
#include "elf_closure.h"

/*
 * The report, on stdout (one fact per line, so tests and people can grep it):
 *
 *   program PATH
 *   policy FILE (-p | VIAUDIT_POLICY | search path)      or: policy none: nothing would be rebound
 *   object main PATH (program)
 *     SYMBOL         KIND    -> VERDICT
 *   object NAME PATH (SOURCE[; no soname])
 *     no socket symbols
 *   object NAME not found (needed by NAME)
 *
 * NAME is the name the policy's CALLER matches (`main`, the soname, else the basename).
 * SOURCE is how ld.so finds the object: program, program found in PATH, interpreter, rpath,
 * LD_LIBRARY_PATH, runpath, ld.so.cache, default dir, path in DT_NEEDED.
 * KIND is plt (R_X86_64_JUMP_SLOT), got (R_X86_64_GLOB_DAT: -fno-plt or a function pointer)
 * or plt+got. VERDICT is, for a creation call, `route FILE:LINE TRANSPORT (may route)` with
 * the first route whose CALLER matches the object and "(may route)" or "(never routed)" from
 * vi_policy_may_route, or `kernel (no rule)`; for an fd call, `fd call: follows the
 * descriptor`; `kernel (no policy)` or `kernel (policy routes nothing for PROG)` when the
 * module would rebind nothing. A trace rule naming the symbol adds `, traced FILE:LINE`.
 *
 * On stderr: the policy's diagnostics, and a warning for each route or trace CALLER of this
 * program that matches no object of the closure.
 */

VI_SYMBOL_TABLE(explain_symbols);

#define EXPLAIN_PREFIX "viaudit explain: "

/* The policy the audit module would use, and how it was chosen. */
struct explain_policy {
	char path[PATH_MAX];
	const char *how;
	struct vi_policy *policy; /* NULL when there is none */
	bool enabled;             /* some route of this program is not `kernel` */
};

struct explain {
	struct closure closure;
	const char *program;  /* basename of the executable as run, for `program` globs */
	char exe_path[PATH_MAX];
	struct explain_policy policy;
};

#define EXPLAIN_USAGE "usage: viaudit explain [-p POLICY] PROGRAM\n"

static void explain_usage(FILE *out)
{
	fputs(EXPLAIN_USAGE
	      "\n"
	      "List the objects ld.so would load for PROGRAM (its DT_NEEDED closure), the socket\n"
	      "functions each imports through the PLT or a GOT slot, and what the policy does with\n"
	      "each call. Without -p the policy is the one the audit module would use:\n"
	      "VIAUDIT_POLICY, else $XDG_CONFIG_HOME/viaudit/PROG.policy (~/.config),\n"
	      "/etc/viaudit/PROG.policy, /etc/viaudit/default.policy.\n"
	      "\n"
	      "  -p, --policy POLICY   explain with this policy file\n"
	      "  -h, --help            show this help\n",
	      out);
}

/* The executable's path as the audit module names it (audit/config.c: the name as run). */
static void explain_set_exe_path(struct explain *ex, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	char *resolved = path[0] == '/' ? NULL : realpath(path, NULL);
	char *dir_end = resolved ? strrchr(resolved, '/') : NULL;
	if (dir_end != NULL)
		snprintf(ex->exe_path, sizeof(ex->exe_path), "%.*s/%s", (int)(dir_end - resolved),
			 resolved, base);
	else
		snprintf(ex->exe_path, sizeof(ex->exe_path), "%s", path);
	free(resolved);
	const char *slash = strrchr(ex->exe_path, '/');
	ex->program = slash != NULL ? slash + 1 : ex->exe_path;
}

/* Whether `path` exists, as the module's search checks it. */
static bool explain_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Finds the policy as the audit module does (audit/config.c); `option` is -p or NULL. */
static void explain_find_policy(struct explain *ex, const char *option)
{
	struct explain_policy *p = &ex->policy;
	const char *env = getenv("VIAUDIT_POLICY");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	p->how = NULL;
	if (option != NULL) {
		snprintf(p->path, sizeof(p->path), "%s", option);
		p->how = "-p";
		return;
	}
	if (env != NULL && env[0] != '\0') {
		snprintf(p->path, sizeof(p->path), "%s", env);
		p->how = "VIAUDIT_POLICY";
		return;
	}
	p->how = "search path";
	if (xdg != NULL && xdg[0] == '/')
		snprintf(p->path, sizeof(p->path), "%s/viaudit/%s.policy", xdg, ex->program);
	else if (home != NULL && home[0] == '/')
		snprintf(p->path, sizeof(p->path), "%s/.config/viaudit/%s.policy", home,
			 ex->program);
	else
		p->path[0] = '\0';
	if (p->path[0] != '\0' && explain_exists(p->path))
		return;
	snprintf(p->path, sizeof(p->path), "/etc/viaudit/%s.policy", ex->program);
	if (explain_exists(p->path))
		return;
	snprintf(p->path, sizeof(p->path), "/etc/viaudit/default.policy");
	if (explain_exists(p->path))
		return;
	p->path[0] = '\0';
	p->how = NULL;
}

/* The object as the policy sees it. */
static struct vi_object explain_vi_object(const struct explain *ex, const struct closure_object *o)
{
	return (struct vi_object){
		.is_main = o->is_main,
		.path = o->is_main ? ex->exe_path : o->path ? o->path : "",
		.soname = o->soname,
	};
}

/* The first route of this program whose CALLER matches the object, or NULL. */
static const struct vi_route *explain_first_route(const struct explain *ex,
						  const struct vi_object *object)
{
	const struct vi_policy *policy = ex->policy.policy;
	for (size_t i = 0; i < policy->nroutes; i++) {
		const struct vi_route *r = &policy->routes[i];
		if (vi_program_matches(r->program, ex->program) &&
		    vi_caller_matches(&r->caller, object))
			return r;
	}
	return NULL;
}

/* Prints what happens to a call of symbol `id` made by `object`. */
static void explain_print_verdict(const struct explain *ex, const struct vi_object *object,
				  int id)
{
	const struct vi_policy *policy = ex->policy.policy;
	if (policy == NULL) {
		printf("kernel (no policy)\n");
		return;
	}
	if (!ex->policy.enabled) {
		printf("kernel (policy routes nothing for %s)", ex->program);
	} else if (explain_symbols[id].class == VI_CLASS_FD) {
		printf("fd call: follows the descriptor");
	} else {
		const struct vi_route *route = explain_first_route(ex, object);
		if (route == NULL)
			printf("kernel (no rule)");
		else
			printf("route %s:%u %s (%s)", route->pos.file, route->pos.line,
			       vi_transport_name(route->transport),
			       vi_policy_may_route(policy, ex->program, object) ? "may route"
										: "never routed");
	}
	const struct vi_trace *trace =
		vi_policy_match_trace(policy, ex->program, object, explain_symbols[id].name);
	if (trace != NULL)
		printf(", traced %s:%u", trace->pos.file, trace->pos.line);
	putchar('\n');
}

static const char *explain_kind_name(unsigned kind)
{
	switch (kind & (CLOSURE_IMPORT_PLT | CLOSURE_IMPORT_GOT)) {
	case CLOSURE_IMPORT_PLT:
		return "plt";
	case CLOSURE_IMPORT_GOT:
		return "got";
	default:
		return "plt+got";
	}
}

/* The name messages use for the object at `index`: main, the soname, else the basename. */
static const char *explain_object_name(const struct explain *ex, size_t index)
{
	const struct closure_object *o = &ex->closure.objects[index];
	if (o->is_main)
		return "main";
	if (o->path == NULL)
		return o->name;
	struct vi_object object = explain_vi_object(ex, o);
	return vi_object_display_name(&object);
}

static void explain_print_object(const struct explain *ex, size_t index)
{
	const struct closure_object *o = &ex->closure.objects[index];
	if (o->path == NULL) {
		printf("object %s not found", o->name);
		if (o->loader != CLOSURE_NO_LOADER)
			printf(" (needed by %s)", explain_object_name(ex, o->loader));
		else if (o->source == CLOSURE_NOT_FOUND)
			printf(" (interpreter)");
		putchar('\n');
		return;
	}
	struct vi_object object = explain_vi_object(ex, o);
	printf("object %s %s (%s%s)\n", explain_object_name(ex, index), o->path,
	       closure_source_name(o->source), !o->is_main && o->soname == NULL ? "; no soname" : "");
	if (!o->dynamic) {
		printf("  statically linked: ld.so does not run, so nothing can be rebound\n");
		return;
	}
	if (o->problem != NULL)
		printf("  unreadable dynamic section: %s\n", o->problem);
	bool any = false;
	for (int id = 0; id < VI_SYM_COUNT; id++) {
		if (o->imports[id] == 0)
			continue;
		any = true;
		printf("  %-14s %-7s -> ", explain_symbols[id].name, explain_kind_name(o->imports[id]));
		explain_print_verdict(ex, &object, id);
	}
	if (!any)
		printf("  no socket symbols\n");
}

/* Whether `caller` matches some object of the closure. */
static bool explain_caller_matches_any(const struct explain *ex, const struct vi_caller *caller)
{
	for (size_t i = 0; i < ex->closure.count; i++) {
		const struct closure_object *o = &ex->closure.objects[i];
		if (o->path == NULL)
			continue;
		struct vi_object object = explain_vi_object(ex, o);
		if (vi_caller_matches(caller, &object))
			return true;
	}
	return false;
}

static void explain_warn_caller(const struct explain *ex, const struct vi_caller *caller)
{
	if (explain_caller_matches_any(ex, caller))
		return;
	fprintf(stderr,
		"%s:%u:%u: warning: CALLER '%s' matches no object of %s (it may match one loaded "
		"later with dlopen)\n",
		caller->pos.file, caller->pos.line, caller->pos.col,
		caller->pattern ? caller->pattern : "*", ex->program);
}

/* Warns about each route and trace of this program whose CALLER matches no object. */
static void explain_warn_unmatched_callers(const struct explain *ex)
{
	const struct vi_policy *policy = ex->policy.policy;
	for (size_t i = 0; i < policy->nroutes; i++) {
		if (vi_program_matches(policy->routes[i].program, ex->program))
			explain_warn_caller(ex, &policy->routes[i].caller);
	}
	for (size_t i = 0; i < policy->ntraces; i++) {
		if (vi_program_matches(policy->traces[i].program, ex->program))
			explain_warn_caller(ex, &policy->traces[i].caller);
	}
}

/* Whether some route of this program could carry a connection (audit/config.c does the same). */
static bool explain_policy_routes_anything(const struct explain *ex)
{
	const struct vi_policy *policy = ex->policy.policy;
	for (size_t i = 0; i < policy->nroutes; i++) {
		if (policy->routes[i].transport != VI_TRANSPORT_KERNEL &&
		    vi_program_matches(policy->routes[i].program, ex->program))
			return true;
	}
	return false;
}

/* Loads the chosen policy; returns a cli_status (errors are printed). */
static int explain_load_policy(struct explain *ex)
{
	struct explain_policy *p = &ex->policy;
	if (p->how == NULL)
		return CLI_OK;
	p->policy = vi_policy_load(p->path);
	if (p->policy == NULL) {
		fprintf(stderr, EXPLAIN_PREFIX "%s: %s\n", p->path, strerror(ENOMEM));
		return CLI_USER_ERROR;
	}
	if (p->policy->nerrors > 0) {
		vi_policy_print_diagnostics(p->policy, STDERR_FILENO);
		return CLI_USER_ERROR;
	}
	vi_policy_print_diagnostics(p->policy, STDERR_FILENO); /* warnings only */
	p->enabled = explain_policy_routes_anything(ex);
	return CLI_OK;
}

static void explain_print_report(const struct explain *ex)
{
	const struct closure *closure = &ex->closure;
	printf("program %s\n", closure->objects[0].path);
	if (ex->policy.policy != NULL)
		printf("policy %s (%s)\n", ex->policy.path, ex->policy.how);
	else
		printf("policy none: nothing would be rebound\n");
	for (size_t i = 0; i < closure->count; i++)
		explain_print_object(ex, i);
}

/* Parses the options; returns -1 to go on, else the exit status. */
static int explain_parse_options(int argc, char **argv, const char **policy, const char **program)
{
	static const struct option options[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 0; /* argv[0] is "explain"; also resets getopt for a second call */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:h", options, NULL)) != -1) {
		switch (c) {
		case 'p':
			*policy = optarg;
			break;
		case 'h':
			explain_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, EXPLAIN_PREFIX "option '%s' needs an argument\n",
				argv[optind - 1]);
			fputs(EXPLAIN_USAGE, stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, EXPLAIN_PREFIX "unknown option '%s'\n", argv[optind - 1]);
			fputs(EXPLAIN_USAGE, stderr);
			return CLI_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, EXPLAIN_PREFIX "%s\n",
			argc == optind ? "no PROGRAM given" : "one PROGRAM only");
		fputs(EXPLAIN_USAGE, stderr);
		return CLI_USAGE;
	}
	*program = argv[optind];
	return -1;
}

int cli_explain(int argc, char **argv)
{
	const char *policy_option = NULL, *program = NULL;
	int status = explain_parse_options(argc, argv, &policy_option, &program);
	if (status >= 0)
		return status;

	struct explain ex = { 0 };
	const struct closure_options options = {
		.ld_library_path = getenv("LD_LIBRARY_PATH"),
		.exec_path = getenv("PATH"),
	};
	if (closure_build(&ex.closure, program, &options) < 0) {
		fprintf(stderr, EXPLAIN_PREFIX "%s: %s\n", program, ex.closure.error);
		closure_free(&ex.closure);
		return CLI_USER_ERROR;
	}
	explain_set_exe_path(&ex, ex.closure.objects[0].path);
	explain_find_policy(&ex, policy_option);
	status = explain_load_policy(&ex);
	if (status == CLI_OK) {
		explain_print_report(&ex);
		fflush(stdout);
		if (ex.policy.policy != NULL)
			explain_warn_unmatched_callers(&ex);
	}
	vi_policy_free(ex.policy.policy);
	closure_free(&ex.closure);
	return status;
}
