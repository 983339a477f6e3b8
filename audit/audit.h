/* The audit layer's process-wide state and the pieces its files share. */
#ifndef VI_AUDIT_H
#define VI_AUDIT_H

#include <link.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <viaudit/policy.h>

#include "elf_dynamic.h"
#include "interpose.h"

/* One loaded object of the base namespace, as the audit layer knows it (its la_objopen cookie). */
struct audit_object {
	struct link_map *map;
	struct elf_dynamic dyn;
	struct vi_object vi;  /* what the policy's CALLER patterns see */
	const char *display;  /* "main", soname or basename */
	bool is_libc;
	bool may_route;       /* creation calls from it may be routed */
	bool got_patched;     /* its GLOB_DAT slots have been looked at */
	bool closed;
};

struct audit_state {
	bool enabled;               /* a valid policy that routes or traces something */
	bool routing;               /* it routes something: socket calls are rebound */
	struct vi_policy *policy;
	char program[NAME_MAX + 1]; /* basename of the executable, for `program` globs */
	char exe_path[PATH_MAX];
	atomic_flag objects_lock;
	struct audit_object **objects;
	size_t nobjects, objects_cap;
	bool startup_done;          /* LA_ACT_CONSISTENT seen once */
	bool *route_caller_used;    /* per route: has its CALLER matched a loaded object */
};

extern struct audit_state audit;

/* config.c: reads the environment and the policy; sets audit.enabled. */
void audit_config_load(void);

/* objects.c */
struct audit_object *audit_object_add(struct link_map *map);
struct audit_object *audit_object_by_address(const void *pc);
/* The object a call came from: by its return address, or, from a traced call, the traced caller. */
struct audit_object *audit_object_of_caller(const void *pc);
void audit_objects_lock(void);
void audit_objects_unlock(void);

/* binding.c: what to bind `symname` to for `obj`; `real` is the address ld.so chose. */
uintptr_t audit_bind(struct audit_object *obj, const char *symname, uintptr_t real,
		     const char *how);
/* Looks up the program's libc functions in libc.so.6 (fills vi_libc). Returns 0 or -errno. */
int audit_find_libc(struct audit_object *libc);
/* Answers interpose's route question. */
void audit_route(const void *caller_pc, enum vi_proto proto, const struct sockaddr *addr,
		 socklen_t addrlen, bool is_bind, struct vi_route_choice *out);

/* got.c: rewrites the GLOB_DAT slots of every object not yet patched. */
void audit_got_patch_all(void);

/* trace.c: the policy's `trace` rules (with the `trace` log category; see trace.c). */
/* Sets tracing up after the policy `policy_path` is loaded: prototypes, warnings. */
void audit_trace_setup(const char *policy_path);
/* Whether trace rules apply to this program (the module must watch its objects). */
bool audit_trace_active(void);
/* Whether some traced symbol is not a socket function, so every object must be BINDTO. */
bool audit_trace_binds_to_all(void);
/* Whether a binding of `symname` by `obj` is traced. */
bool audit_trace_wants(const struct audit_object *obj, const char *symname);
/* What to bind instead of `target`: a trace closure when traced, else `target` itself. */
uintptr_t audit_trace_wrap(struct audit_object *obj, const char *symname, uintptr_t target,
			   const char *how);
/* Warns about traced symbols and callers that nothing loaded at start-up matches. */
void audit_trace_startup_done(void);

/* dlopen.c: replacements for dlopen and dlmopen that patch what they loaded. */
void *audit_dlopen(const char *file, int mode);
void *audit_dlmopen(Lmid_t lmid, const char *file, int mode);

#endif
