/*
 * Tracing in the audit module: which bindings the policy's `trace` rules select, their
 * prototypes, and the closures bound in their place.
 *
 * Trace rules are in force when the `trace` log category is on (`viaudit trace` turns it on;
 * so do VIAUDIT_LOG=trace and `set log trace`). A traced binding -- a PLT slot through
 * la_symbind64, a GLOB_DAT slot through got.c, a dlsym -- gets the address of a libffi
 * closure that calls what the binding would otherwise have been: viaudit's routed function
 * or libc's (so tracing composes with routing), or any other object's function for a symbol
 * declared in a prototype file. Every other binding is left exactly as it was: untraced
 * calls pay nothing, and there is no la_pltenter.
 *
 * Prototypes: the socket functions' come from the X-macro (trace_socket.c); any other
 * symbol's from prototype files named by `set prototypes PATH` and VIAUDIT_PROTOTYPES
 * (a ':' list), searched latest first, before the socket table (so a file can redeclare
 * a socket function). A file with errors is reported, FILE:LINE:COL, and ignored.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <log.h>

#include "audit.h"
#include "trace_closure.h"
#include "trace_socket.h"

#define TRACE_FILES_MAX 8
#define TRACE_FILE_SIZE_MAX (4u << 20)

struct trace_file {
	char *path;
	struct trace_proto *protos;
	size_t count;
};

/* One traced binding. Never freed: ld.so may hold its closure's address in a GOT. */
struct trace_binding {
	struct trace_binding *next;
	const struct audit_object *obj;
	const struct trace_proto *proto;
	uintptr_t target;
	struct trace_closure closure;
};

static struct {
	bool on;          /* some traced symbol has a prototype: bindings may be wrapped */
	bool bind_to_all; /* some traced symbol is not a socket function */
	size_t rules;     /* trace rules in force for this program */
	struct trace_file files[TRACE_FILES_MAX];
	size_t nfiles;
	struct trace_proto *socket[VI_SYM_COUNT]; /* parsed for the traced socket functions */
	atomic_flag lock; /* guards bindings: lazy binding happens on any thread */
	struct trace_binding *bindings;
} trace_state = { .lock = ATOMIC_FLAG_INIT };

static void trace_lock(void)
{
	/* Acquire pairs with the release in trace_unlock. */
	while (atomic_flag_test_and_set_explicit(&trace_state.lock, memory_order_acquire))
		sched_yield();
}

static void trace_unlock(void)
{
	atomic_flag_clear_explicit(&trace_state.lock, memory_order_release);
}

/* The prototype for `name`: prototype files latest first, then the socket table. */
static const struct trace_proto *trace_find_proto(const char *name)
{
	for (size_t f = trace_state.nfiles; f-- > 0;) {
		const struct trace_file *file = &trace_state.files[f];
		for (size_t i = 0; i < file->count; i++)
			if (strcmp(file->protos[i].name, name) == 0)
				return &file->protos[i];
	}
	int id = trace_socket_id(name);
	return id >= 0 ? trace_state.socket[id] : NULL;
}

/* ----- prototype files ----- */

static void trace_report(void *context, const char *line)
{
	vi_log_line("%s", line);
}

/* Reads the whole file at `path` into a NUL-terminated malloc'ed buffer. Returns 0 or -errno. */
static int trace_read_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	char *buf = NULL;
	size_t have = 0;
	if (fstat(fd, &st) != 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EISDIR;
	else if ((size_t)st.st_size > TRACE_FILE_SIZE_MAX)
		err = -EFBIG;
	else if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		err = -ENOMEM;
	while (err == 0 && have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	if (err < 0) {
		free(buf);
		return err;
	}
	buf[have] = '\0';
	*text = buf;
	*len = have;
	return 0;
}

/* Loads one prototype file; a file with errors is reported and traces nothing. */
static void trace_load_file(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	if (trace_state.nfiles == TRACE_FILES_MAX) {
		vi_log_line("%s: warning: more than %d prototype files; this one is ignored", path,
			    TRACE_FILES_MAX);
		return;
	}
	int err = trace_read_file(path, &text, &len);
	if (err < 0) {
		vi_log_line("%s: error: cannot read the prototype file: %s", path, strerror(-err));
		return;
	}
	struct trace_file *file = &trace_state.files[trace_state.nfiles];
	int errors = trace_proto_parse_file(text, len, path, &file->protos, &file->count,
					    trace_report, NULL);
	free(text);
	if (errors < 0) {
		vi_log_line("%s: out of memory reading the prototype file", path);
		return;
	}
	if (errors > 0) {
		vi_log_line("%s: %d error%s: nothing declared in it is traced", path, errors,
			    errors == 1 ? "" : "s");
		return;
	}
	file->path = strdup(path);
	trace_state.nfiles++;
}

/* `set prototypes PATH`: a relative PATH is relative to the policy file's directory. */
static void trace_load_policy_file(const char *policy_path, const char *path)
{
	char joined[PATH_MAX];
	const char *slash = strrchr(policy_path, '/');
	if (path[0] != '/' && slash != NULL) {
		int n = snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - policy_path),
				 policy_path, path);
		if (n > 0 && (size_t)n < sizeof(joined))
			path = joined;
	}
	trace_load_file(path);
}

/* VIAUDIT_PROTOTYPES: a ':'-separated list of files. */
static void trace_load_env_files(const char *list)
{
	char path[PATH_MAX];
	while (list != NULL && *list != '\0') {
		size_t n = strcspn(list, ":");
		if (n > 0 && n < sizeof(path)) {
			memcpy(path, list, n);
			path[n] = '\0';
			trace_load_file(path);
		}
		list += n;
		list += *list == ':';
	}
}

/* ----- set-up ----- */

/* Parses the socket table's prototype of `name` if it is a socket function nobody parsed yet. */
static void trace_parse_socket_proto(const char *name)
{
	int id = trace_socket_id(name);
	if (id < 0 || trace_state.socket[id] != NULL)
		return;
	struct trace_proto *proto = malloc(sizeof(*proto));
	struct trace_proto_error err;
	if (proto == NULL)
		return;
	if (trace_socket_proto((enum vi_symbol_id)id, proto, &err) < 0) {
		vi_log_line("internal error: the prototype of %s does not parse (column %u: %s)",
			    name, err.col, err.message);
		free(proto);
		return;
	}
	trace_state.socket[id] = proto;
}

void audit_trace_setup(const char *policy_path)
{
	const struct vi_policy *policy = audit.policy;
	if (!vi_log_enabled(VI_LOG_TRACE) || policy == NULL)
		return;
	const char *format = getenv("VIAUDIT_TRACE_FORMAT");
	trace_output.json = format != NULL && strcmp(format, "json") == 0;
	if (policy->settings.prototypes != NULL)
		trace_load_policy_file(policy_path, policy->settings.prototypes);
	trace_load_env_files(getenv("VIAUDIT_PROTOTYPES"));

	size_t rules = 0;
	for (size_t i = 0; i < policy->ntraces; i++) {
		const struct vi_trace *t = &policy->traces[i];
		if (!vi_program_matches(t->program, audit.program))
			continue;
		rules++;
		for (size_t j = 0; j < t->nsymbols; j++) {
			const char *name = t->symbols[j];
			trace_parse_socket_proto(name);
			if (trace_find_proto(name) == NULL) {
				vi_log_line("%s:%u:%u: warning: no prototype for '%s': it is not traced "
					    "(declare it in a prototype file: `set prototypes FILE` or "
					    "VIAUDIT_PROTOTYPES)",
					    t->symbol_pos[j].file, t->symbol_pos[j].line,
					    t->symbol_pos[j].col, name);
				continue;
			}
			trace_state.on = true;
			if (trace_socket_id(name) < 0)
				trace_state.bind_to_all = true;
		}
	}
	trace_state.rules = rules;
	if (rules == 0)
		vi_log_line("%s: warning: no trace rule applies to %s: nothing is traced",
			    policy->file, audit.program);
}

bool audit_trace_active(void)
{
	return trace_state.rules > 0;
}

bool audit_trace_binds_to_all(void)
{
	return trace_state.bind_to_all;
}

/* ----- bindings ----- */

bool audit_trace_wants(const struct audit_object *obj, const char *symname)
{
	return trace_state.on &&
	       vi_policy_match_trace(audit.policy, audit.program, &obj->vi, symname) != NULL &&
	       trace_find_proto(symname) != NULL;
}

uintptr_t audit_trace_wrap(struct audit_object *obj, const char *symname, uintptr_t target,
			   const char *how)
{
	if (!trace_state.on || target == 0)
		return target;
	const struct vi_trace *rule =
		vi_policy_match_trace(audit.policy, audit.program, &obj->vi, symname);
	const struct trace_proto *proto = rule != NULL ? trace_find_proto(symname) : NULL;
	if (proto == NULL)
		return target;

	trace_lock();
	struct trace_binding *b;
	for (b = trace_state.bindings; b != NULL; b = b->next)
		if (b->obj == obj && b->proto == proto && b->target == target)
			break;
	if (b == NULL && (b = calloc(1, sizeof(*b))) != NULL) {
		/* l_ld lies inside the object: routing asks audit_object_of_caller about it. */
		int err = trace_closure_create(&b->closure, proto, (void *)target, obj->display,
					       obj->map->l_ld);
		if (err < 0) {
			free(b);
			b = NULL;
			vi_log_line("%s %s: cannot make a trace closure (errno %d): not traced",
				    obj->display, symname, -err);
		} else {
			b->obj = obj;
			b->proto = proto;
			b->target = target;
			b->next = trace_state.bindings;
			trace_state.bindings = b;
		}
	}
	trace_unlock();
	if (b == NULL)
		return target;
	if (vi_log_enabled(VI_LOG_DEBUG))
		vi_log_line("debug: %s %s %s -> traced (%s:%u)", obj->display, symname, how,
			    rule->pos.file, rule->pos.line);
	return (uintptr_t)b->closure.code;
}

/* ----- start-up warnings ----- */

/* Whether some object loaded now defines `name`. */
static bool trace_symbol_defined(const char *name)
{
	bool found = false;
	audit_objects_lock();
	for (size_t i = 0; i < audit.nobjects && !found; i++) {
		const struct audit_object *obj = audit.objects[i];
		found = !obj->closed && obj->dyn.symtab != NULL &&
			elf_dynamic_lookup(&obj->dyn, name) != NULL;
	}
	audit_objects_unlock();
	return found;
}

static bool trace_caller_loaded(const struct vi_caller *caller)
{
	bool found = false;
	audit_objects_lock();
	for (size_t i = 0; i < audit.nobjects && !found; i++)
		found = !audit.objects[i]->closed && vi_caller_matches(caller, &audit.objects[i]->vi);
	audit_objects_unlock();
	return found;
}

void audit_trace_startup_done(void)
{
	const struct vi_policy *policy = audit.policy;
	if (!vi_log_enabled(VI_LOG_TRACE) || policy == NULL)
		return;
	for (size_t i = 0; i < policy->ntraces; i++) {
		const struct vi_trace *t = &policy->traces[i];
		if (!vi_program_matches(t->program, audit.program))
			continue;
		if (!trace_caller_loaded(&t->caller))
			vi_log_line("%s:%u:%u: warning: trace CALLER '%s' matches no object loaded "
				    "at start-up",
				    t->caller.pos.file, t->caller.pos.line, t->caller.pos.col,
				    t->caller.pattern ? t->caller.pattern : "main");
		for (size_t j = 0; j < t->nsymbols; j++)
			if (!trace_symbol_defined(t->symbols[j]))
				vi_log_line("%s:%u:%u: warning: traced symbol '%s' is defined by no "
					    "object loaded at start-up",
					    t->symbol_pos[j].file, t->symbol_pos[j].line,
					    t->symbol_pos[j].col, t->symbols[j]);
	}
}
