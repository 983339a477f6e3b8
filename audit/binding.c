/* What each binding becomes: libc's function or viaudit's, decided once per (object, symbol). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libc.h>
#include <log.h>

#include "audit.h"

VI_SYMBOL_TABLE(binding_symbols);

/* Symbol ids sorted by name, for a binary search per binding at start-up. */
static enum vi_symbol_id binding_sorted[VI_SYM_COUNT];
static bool binding_sorted_ready;

static int binding_compare(const void *a, const void *b)
{
	return strcmp(binding_symbols[*(const enum vi_symbol_id *)a].name,
		      binding_symbols[*(const enum vi_symbol_id *)b].name);
}

static void binding_sort(void)
{
	for (int i = 0; i < VI_SYM_COUNT; i++)
		binding_sorted[i] = (enum vi_symbol_id)i;
	qsort(binding_sorted, VI_SYM_COUNT, sizeof(binding_sorted[0]), binding_compare);
	binding_sorted_ready = true;
}

/* The rebound symbol called `name`, or -1. */
static int binding_symbol_id(const char *name)
{
	size_t lo = 0, hi = VI_SYM_COUNT;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, binding_symbols[binding_sorted[mid]].name);
		if (c == 0)
			return (int)binding_sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

int audit_find_libc(struct audit_object *libc)
{
	if (!binding_sorted_ready)
		binding_sort();
	void **slots = (void **)&vi_libc;
	for (int i = 0; i < VI_SYM_COUNT; i++) {
		const ElfW(Sym) *sym = elf_dynamic_lookup(&libc->dyn, binding_symbols[i].name);
		slots[i] = sym ? (void *)(libc->dyn.base + sym->st_value) : NULL;
	}
	static const struct {
		const char *name;
		size_t offset;
	} extra[] = {
		{ "__errno_location", offsetof(struct vi_libc, errno_location) },
		{ "dlopen", offsetof(struct vi_libc, dlopen) },
		{ "dlmopen", offsetof(struct vi_libc, dlmopen) },
		{ "dlsym", offsetof(struct vi_libc, dlsym) },
		{ "__register_atfork", offsetof(struct vi_libc, register_atfork) },
		{ "__libc_single_threaded", offsetof(struct vi_libc, single_threaded) },
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		const ElfW(Sym) *sym = elf_dynamic_lookup(&libc->dyn, extra[i].name);
		*(void **)((char *)&vi_libc + extra[i].offset) =
			sym ? (void *)(libc->dyn.base + sym->st_value) : NULL;
	}
	return vi_libc_complete() ? 0 : -ENOENT;
}

/* The first route in force for `obj` (whatever its PROTO and ENDPOINT), or NULL. */
static const struct vi_route *binding_first_route(const struct audit_object *obj,
						  bool skip_kernel)
{
	const struct vi_policy *p = audit.policy;
	for (size_t i = 0; i < p->nroutes; i++) {
		const struct vi_route *r = &p->routes[i];
		if (skip_kernel && r->transport == VI_TRANSPORT_KERNEL)
			continue;
		if (vi_program_matches(r->program, audit.program) &&
		    vi_caller_matches(&r->caller, &obj->vi))
			return r;
	}
	return NULL;
}

static uintptr_t binding_hook(const char *symname)
{
	if (strcmp(symname, "dlopen") == 0)
		return (uintptr_t)audit_dlopen;
	if (strcmp(symname, "dlmopen") == 0)
		return (uintptr_t)audit_dlmopen;
	return 0;
}

/* What routing makes of the binding: libc's function (`real`) or viaudit's. */
static uintptr_t binding_route(struct audit_object *obj, const char *symname, uintptr_t real,
			       const char *how)
{
	uintptr_t hook = binding_hook(symname);
	if (hook != 0) {
		if (vi_log_enabled(VI_LOG_DEBUG))
			vi_log_line("debug: %s %s %s -> viaudit (patches what it loads)", obj->display,
				    symname, how);
		return hook;
	}
	if (!audit.routing)
		return real; /* tracing only */
	int id = binding_symbol_id(symname);
	if (id < 0)
		return real;
	if (binding_symbols[id].class == VI_CLASS_FD) {
		if (vi_log_enabled(VI_LOG_ROUTES))
			vi_log_line("routes: %s %s %s -> viaudit (fd call)", obj->display, symname, how);
		return (uintptr_t)vi_interpose_function((enum vi_symbol_id)id);
	}
	if (!obj->may_route) {
		const struct vi_route *r = binding_first_route(obj, false);
		if (r != NULL && vi_log_enabled(VI_LOG_ROUTES))
			vi_log_line("routes: %s %s %s -> libc (%s:%u kernel)", obj->display, symname,
				    how, r->pos.file, r->pos.line);
		return real;
	}
	if (vi_log_enabled(VI_LOG_ROUTES)) {
		const struct vi_route *r = binding_first_route(obj, true);
		if (r != NULL)
			vi_log_line("routes: %s %s %s -> viaudit (%s:%u %s)", obj->display, symname,
				    how, r->pos.file, r->pos.line, vi_transport_name(r->transport));
	}
	return (uintptr_t)vi_interpose_function((enum vi_symbol_id)id);
}

uintptr_t audit_bind(struct audit_object *obj, const char *symname, uintptr_t real,
		     const char *how)
{
	/* Tracing wraps whatever routing chose, so a traced call is also a routed one. */
	return audit_trace_wrap(obj, symname, binding_route(obj, symname, real, how), how);
}

void audit_route(const void *caller_pc, enum vi_proto proto, const struct sockaddr *addr,
		 socklen_t addrlen, bool is_bind, struct vi_route_choice *out)
{
	struct audit_object *obj = audit_object_of_caller(caller_pc);
	out->caller = obj != NULL ? obj->display : "?";
	out->route = NULL;
	if (obj != NULL)
		out->route = vi_policy_match_route(audit.policy, audit.program, &obj->vi, proto, addr,
						   addrlen, is_bind);
}
