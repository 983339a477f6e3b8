/*
 * GOT patching: bindings ld.so does not audit. Objects built with -fno-plt, and function
 * pointers such as `&send`, reach libc through R_*_GLOB_DAT slots that ld.so fills without
 * calling la_symbind64, so each selected object's slots are rewritten here after relocation.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include <libc.h>
#include <log.h>

#include "audit.h"

#if defined(__x86_64__)
#define GOT_RELOC_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define GOT_RELOC_GLOB_DAT R_AARCH64_GLOB_DAT
#else
#error "GOT patching needs this architecture's GLOB_DAT relocation type"
#endif

/* The address of libc.so.6's definition of `name`, or 0. */
static uintptr_t got_libc_address(const struct audit_object *libc, const char *name)
{
	const ElfW(Sym) *sym = elf_dynamic_lookup(&libc->dyn, name);
	return sym != NULL ? libc->dyn.base + sym->st_value : 0;
}

/* Whether `value` is the address of the function `name` of the object that holds it. */
static bool got_slot_is_function(uintptr_t value, const char *name)
{
	const struct audit_object *def = audit_object_by_address((const void *)value);
	const ElfW(Sym) *sym = def != NULL ? elf_dynamic_lookup(&def->dyn, name) : NULL;
	if (sym == NULL)
		return false;
	if (ELF64_ST_TYPE(sym->st_info) == STT_GNU_IFUNC)
		return true; /* the slot holds the implementation the resolver chose */
	return ELF64_ST_TYPE(sym->st_info) == STT_FUNC && def->dyn.base + sym->st_value == value;
}

/*
 * Rewrites the GLOB_DAT slots of `obj` that hold a libc function viaudit rebinds or
 * traces, or another object's function that a trace rule names. A slot holding anything
 * else (the program's own `connect`, an LD_PRELOAD library's) is left alone, as
 * la_symbind64 leaves bindings to other objects. Returns how many it rewrote.
 */
static int got_patch_object(struct audit_object *obj, const struct audit_object *libc)
{
	const struct elf_dynamic *dyn = &obj->dyn;
	size_t n = dyn->relasz / sizeof(ElfW(Rela));
	bool relro_open = false;
	int patched = 0;
	for (size_t i = 0; i < n; i++) {
		const ElfW(Rela) *r = &dyn->rela[i];
		if (ELF64_R_TYPE(r->r_info) != GOT_RELOC_GLOB_DAT)
			continue;
		const char *name = elf_dynamic_symbol_name(dyn, ELF64_R_SYM(r->r_info));
		if (name == NULL || name[0] == '\0')
			continue;
		uintptr_t *slot = (uintptr_t *)(dyn->base + r->r_offset);
		uintptr_t real = got_libc_address(libc, name);
		uintptr_t to;
		if (real != 0 && *slot == real) {
			to = audit_bind(obj, name, real, "got");
		} else if (*slot != 0 && audit_trace_wants(obj, name) &&
			   got_slot_is_function(*slot, name)) {
			real = *slot; /* a traced function of another object (SSL_read) */
			to = audit_trace_wrap(obj, name, real, "got");
		} else {
			continue;
		}
		if (to == real)
			continue;
		uintptr_t a = (uintptr_t)slot;
		bool in_relro = a >= dyn->relro_start && a < dyn->relro_end;
		if (in_relro && !relro_open) {
			if (mprotect((void *)dyn->relro_start, dyn->relro_end - dyn->relro_start,
				     PROT_READ | PROT_WRITE) != 0) {
				vi_log_line("%s: cannot unprotect RELRO to patch %s (errno %d)",
					    obj->display, name, errno);
				continue;
			}
			relro_open = true;
		}
		/* An aligned word store: a thread calling through the slot sees old or new. */
		__atomic_store_n(slot, to, __ATOMIC_RELEASE);
		patched++;
	}
	if (relro_open)
		mprotect((void *)dyn->relro_start, dyn->relro_end - dyn->relro_start, PROT_READ);
	return patched;
}

/*
 * Serializes patching: two threads returning from dlopen at once must not both toggle an
 * object's RELRO protection (one would re-protect a page the other is writing).
 */
static atomic_flag got_lock = ATOMIC_FLAG_INIT;

static void got_patch_pending(void);

void audit_got_patch_all(void)
{
	/* Acquire pairs with the release below: each patcher sees the previous one's flags. */
	while (atomic_flag_test_and_set_explicit(&got_lock, memory_order_acquire))
		sched_yield();
	got_patch_pending();
	atomic_flag_clear_explicit(&got_lock, memory_order_release);
}

static void got_patch_pending(void)
{
	struct audit_object *libc = NULL;
	audit_objects_lock();
	size_t count = audit.nobjects;
	for (size_t i = 0; i < count; i++)
		if (audit.objects[i]->is_libc && !audit.objects[i]->closed)
			libc = audit.objects[i];
	audit_objects_unlock();
	if (libc == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		audit_objects_lock();
		struct audit_object *obj = audit.objects[i];
		audit_objects_unlock();
		if (obj->got_patched || obj->closed || obj->is_libc || obj->dyn.rela == NULL)
			continue;
		obj->got_patched = true;
		got_patch_object(obj, libc);
	}
}
