/* Start-up configuration: the program's name, the environment, and which policy applies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <log.h>

#include "audit.h"

/* The executable's path as it was run (AT_EXECFN keeps a symlink's name: redis-server). */
static void config_find_program(void)
{
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	char resolved[PATH_MAX];
	if (execfn != NULL && execfn[0] != '\0' && realpath(execfn, resolved) != NULL) {
		/* Keep the name as run, but an absolute directory for path globs. */
		const char *base = strrchr(execfn, '/');
		base = base ? base + 1 : execfn;
		snprintf(audit.program, sizeof(audit.program), "%.*s", NAME_MAX, base);
		char *dir_end = strrchr(resolved, '/');
		if (strchr(execfn, '/') != NULL && execfn[0] == '/')
			snprintf(audit.exe_path, sizeof(audit.exe_path), "%s", execfn);
		else if (dir_end != NULL)
			snprintf(audit.exe_path, sizeof(audit.exe_path), "%.*s/%s",
				 (int)(dir_end - resolved), resolved, audit.program);
		return;
	}
	ssize_t n = readlink("/proc/self/exe", audit.exe_path, sizeof(audit.exe_path) - 1);
	audit.exe_path[n > 0 ? n : 0] = '\0';
	const char *base = strrchr(audit.exe_path, '/');
	snprintf(audit.program, sizeof(audit.program), "%.*s", NAME_MAX,
		 base ? base + 1 : audit.exe_path);
}

/* The policy file to use: VIAUDIT_POLICY, else the first of the search path that exists. */
static const char *config_find_policy(char *buf, size_t size)
{
	const char *env = getenv("VIAUDIT_POLICY");
	if (env != NULL && env[0] != '\0')
		return env;
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, size, "%s/viaudit/%s.policy", xdg, audit.program);
	else if (home != NULL && home[0] == '/')
		snprintf(buf, size, "%s/.config/viaudit/%s.policy", home, audit.program);
	else
		buf[0] = '\0';
	if (buf[0] != '\0' && access(buf, F_OK) == 0)
		return buf;
	snprintf(buf, size, "/etc/viaudit/%s.policy", audit.program);
	if (access(buf, F_OK) == 0)
		return buf;
	snprintf(buf, size, "/etc/viaudit/default.policy");
	if (access(buf, F_OK) == 0)
		return buf;
	return NULL;
}

/* Whether some route in force for this program could carry a connection. */
static bool config_policy_routes_anything(const struct vi_policy *policy)
{
	for (size_t i = 0; i < policy->nroutes; i++)
		if (policy->routes[i].transport != VI_TRANSPORT_KERNEL &&
		    vi_program_matches(policy->routes[i].program, audit.program))
			return true;
	return false;
}

static void config_print_warnings(const struct vi_policy *policy)
{
	char line[1024];
	for (size_t i = 0; i < policy->ndiagnostics; i++) {
		if (policy->diagnostics[i].severity != VI_SEVERITY_WARNING)
			continue;
		size_t n = vi_diagnostic_format(&policy->diagnostics[i], line, sizeof(line));
		vi_log_write("viaudit: ", 9);
		vi_log_write(line, n);
	}
}

void audit_config_load(void)
{
	unsigned mask = vi_log_parse_mask(getenv("VIAUDIT_LOG"));
	const char *log_file = getenv("VIAUDIT_LOG_FILE");
	int log_err = vi_log_open(log_file, mask);
	config_find_program();
	if (log_err < 0)
		vi_log_line("cannot open VIAUDIT_LOG_FILE %s (errno %d); logging to stderr", log_file,
			    -log_err);

	char buf[PATH_MAX];
	const char *path = config_find_policy(buf, sizeof(buf));
	if (path == NULL) {
		if (vi_log_enabled(VI_LOG_DEBUG))
			vi_log_line("debug: no policy for %s: nothing is rebound", audit.program);
		if (vi_log_enabled(VI_LOG_TRACE))
			vi_log_line("warning: no policy for %s: nothing is traced", audit.program);
		return;
	}
	struct vi_policy *policy = vi_policy_load(path);
	if (policy == NULL) {
		vi_log_line("%s: out of memory reading the policy: nothing is rebound", path);
		return;
	}
	vi_log_state.mask |= policy->settings.log;
	if (policy->nerrors > 0) {
		char line[1024];
		for (size_t i = 0; i < policy->ndiagnostics; i++) {
			size_t n = vi_diagnostic_format(&policy->diagnostics[i], line, sizeof(line));
			vi_log_write("viaudit: ", 9);
			vi_log_write(line, n);
		}
		if (policy->settings.strict) {
			vi_log_line("%s has errors and `set strict yes`: exiting with status 127", path);
			_exit(127);
		}
		/* An unreadable file is one error at line 0, and one line says it all. */
		if (policy->diagnostics[0].pos.line != 0)
			vi_log_line("%s has %zu error%s: nothing is rebound", path, policy->nerrors,
				    policy->nerrors == 1 ? "" : "s");
		vi_policy_free(policy);
		return;
	}
	if (vi_log_enabled(VI_LOG_ROUTES | VI_LOG_DEBUG))
		config_print_warnings(policy);
	audit.policy = policy;
	audit.route_caller_used = calloc(policy->nroutes + 1, sizeof(bool));
	audit.routing = config_policy_routes_anything(policy);
	audit_trace_setup(path);
	audit.enabled = audit.routing || audit_trace_active();
	if (!audit.enabled && vi_log_enabled(VI_LOG_DEBUG))
		vi_log_line("debug: %s routes nothing for %s: nothing is rebound", path,
			    audit.program);
}
