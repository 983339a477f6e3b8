/* The rtld-audit entry points: which objects are audited, and what each binding becomes. */
#include <link.h>
#include <string.h>

#include <libc.h>
#include <log.h>

#include "audit.h"
#include "trace_closure.h"

struct audit_state audit = { .objects_lock = ATOMIC_FLAG_INIT };


/*
 * Called first, before any object is opened. Everything is set up here, since la_preinit
 * runs only after the program's constructors. Returning LAV_CURRENT is required (aarch64
 * accepts nothing else); a module that cannot work still loads and rebinds nothing.
 */
__attribute__((visibility("default"))) unsigned int la_version(unsigned int version)
{
	audit_config_load();
	struct vi_interpose_hooks hooks = { .route = audit_route };
	if (audit.policy != NULL) {
		const struct vi_settings *set = &audit.policy->settings;
		hooks.shm.ring_size = set->ring_size;
		hooks.shm.spin_us = set->spin_us;
		hooks.shm.allow_other_uids = set->allow_other_uids;
	}
	if (audit.routing && vi_interpose_init(&hooks) < 0) {
		vi_log_line("cannot reserve the virtual socket table: nothing is rebound");
		audit.routing = false;
		audit.enabled = audit_trace_active();
	}
	/* A traced call on a virtual socket says which transport served it. */
	trace_output.describe_fd = audit.routing ? vi_interpose_describe_fd : NULL;
	return LAV_CURRENT;
}

static bool audit_is_loader_or_vdso(const struct link_map *map)
{
	const char *name = map->l_name != NULL ? map->l_name : "";
	const char *base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	return strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "linux-vdso", 10) == 0 ||
	       strncmp(base, "linux-gate", 10) == 0;
}

/*
 * BINDFROM for every object of the base namespace (fd calls are rebound in all of them,
 * since a virtual socket can be handed to any library), BINDTO for libc.so.6 only, so that
 * la_symbind64 sees exactly the bindings of program objects to libc -- unless a trace rule
 * names a symbol outside the socket table (SSL_read), which any object may define: then
 * every object is BINDTO, which costs start-up time only.
 */
__attribute__((visibility("default"))) unsigned int la_objopen(struct link_map *map, Lmid_t lmid,
							      uintptr_t *cookie)
{
	if (!audit.enabled || lmid != LM_ID_BASE)
		return 0;
	struct audit_object *obj = audit_object_add(map);
	if (obj == NULL)
		return 0;
	*cookie = (uintptr_t)obj;
	if (audit_is_loader_or_vdso(map)) {
		obj->got_patched = true;
		return 0;
	}
	if (obj->is_libc) {
		obj->got_patched = true;
		if (audit_find_libc(obj) < 0) {
			vi_log_line("cannot find the socket functions in %s: nothing is rebound",
				    map->l_name);
			audit.enabled = false;
			return 0;
		}
		return LA_FLG_BINDTO;
	}
	obj->may_route = audit.routing && vi_policy_may_route(audit.policy, audit.program, &obj->vi);
	for (size_t i = 0; i < audit.policy->nroutes; i++)
		if (vi_caller_matches(&audit.policy->routes[i].caller, &obj->vi))
			audit.route_caller_used[i] = true;
	if (vi_log_enabled(VI_LOG_DEBUG))
		vi_log_line("debug: object %s (%s)%s", obj->display, obj->vi.path,
			    obj->may_route ? ": creation calls may be routed" : "");
	return LA_FLG_BINDFROM | (audit_trace_binds_to_all() ? LA_FLG_BINDTO : 0);
}

__attribute__((visibility("default"))) unsigned int la_objclose(uintptr_t *cookie)
{
	struct audit_object *obj = (struct audit_object *)*cookie;
	if (obj != NULL)
		obj->closed = true;
	return 0;
}

/* Warns, once start-up is done, about routes whose CALLER matched no loaded object. */
static void audit_warn_unused_callers(void)
{
	if (!vi_log_enabled(VI_LOG_ROUTES | VI_LOG_DEBUG))
		return;
	for (size_t i = 0; i < audit.policy->nroutes; i++) {
		const struct vi_route *r = &audit.policy->routes[i];
		if (audit.route_caller_used[i] || !vi_program_matches(r->program, audit.program))
			continue;
		vi_log_line("%s:%u:%u: warning: CALLER '%s' matches no object loaded at start-up",
			    r->caller.pos.file, r->caller.pos.line, r->caller.pos.col,
			    r->caller.pattern ? r->caller.pattern : "main");
	}
}

/*
 * At start-up LA_ACT_CONSISTENT follows relocation, so the GOT can be patched here. For
 * dlopen it comes before relocation in glibc 2.36, which is why dlopen is rebound.
 */
__attribute__((visibility("default"))) void la_activity(uintptr_t *cookie, unsigned int flag)
{
	if (!audit.enabled || flag != LA_ACT_CONSISTENT || audit.startup_done)
		return;
	audit.startup_done = true;
	audit_got_patch_all();
	audit_warn_unused_callers();
	audit_trace_startup_done();
}

__attribute__((visibility("default"))) uintptr_t la_symbind64(Elf64_Sym *sym, unsigned int ndx,
							     uintptr_t *refcook, uintptr_t *defcook,
							     unsigned int *flags, const char *symname)
{
	struct audit_object *ref = (struct audit_object *)*refcook;
	struct audit_object *def = (struct audit_object *)*defcook;
	if (!audit.enabled || ref == NULL || def == NULL)
		return sym->st_value;
	const char *how = (*flags & LA_SYMB_DLSYM) ? "dlsym" : "plt";
	if (!def->is_libc)
		return audit_trace_wrap(ref, symname, sym->st_value, how);
	return audit_bind(ref, symname, sym->st_value, how);
}
