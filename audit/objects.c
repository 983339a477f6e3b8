/* The loaded objects of the base namespace: their names, address ranges and routing facts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "audit.h"
#include "trace_closure.h"

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

void audit_objects_lock(void)
{
	/* Acquire pairs with the release in audit_objects_unlock. */
	while (atomic_flag_test_and_set_explicit(&audit.objects_lock, memory_order_acquire))
		cpu_relax();
}

void audit_objects_unlock(void)
{
	atomic_flag_clear_explicit(&audit.objects_lock, memory_order_release);
}

static const char *object_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

/* Records a newly opened object. Returns NULL when out of memory. */
struct audit_object *audit_object_add(struct link_map *map)
{
	struct audit_object *obj = calloc(1, sizeof(*obj));
	if (obj == NULL)
		return NULL;
	obj->map = map;
	/* The first object of the base namespace is the executable; ld.so names it "". */
	bool is_main = audit.nobjects == 0 && (map->l_name == NULL || map->l_name[0] == '\0');
	const ElfW(Phdr) *phdr = NULL;
	size_t phnum = 0;
	if (is_main) {
		phdr = (const void *)getauxval(AT_PHDR);
		phnum = getauxval(AT_PHNUM);
	}
	elf_dynamic_read(map, phdr, phnum, &obj->dyn);
	obj->vi.is_main = is_main;
	obj->vi.path = is_main ? audit.exe_path : map->l_name;
	obj->vi.soname = obj->dyn.soname;
	obj->display = is_main ? "main" : obj->dyn.soname ? obj->dyn.soname
							   : object_basename(obj->vi.path);
	obj->is_libc = !is_main && obj->dyn.soname != NULL && strcmp(obj->dyn.soname, "libc.so.6") == 0;

	audit_objects_lock();
	if (audit.nobjects == audit.objects_cap) {
		size_t cap = audit.objects_cap ? audit.objects_cap * 2 : 32;
		struct audit_object **grown = realloc(audit.objects, cap * sizeof(*grown));
		if (grown == NULL) {
			audit_objects_unlock();
			free(obj);
			return NULL;
		}
		audit.objects = grown;
		audit.objects_cap = cap;
	}
	audit.objects[audit.nobjects++] = obj;
	audit_objects_unlock();
	return obj;
}

/* The object whose mapping holds `pc`, or NULL. */
struct audit_object *audit_object_by_address(const void *pc)
{
	uintptr_t a = (uintptr_t)pc;
	struct audit_object *found = NULL;
	audit_objects_lock();
	for (size_t i = 0; i < audit.nobjects; i++) {
		struct audit_object *obj = audit.objects[i];
		if (!obj->closed && a >= obj->dyn.start && a < obj->dyn.end) {
			found = obj;
			break;
		}
	}
	audit_objects_unlock();
	return found;
}

/*
 * The object a call came from. A traced call reaches its target from libffi, whose return
 * address is in no program object: then the traced caller is the one that made the call.
 */
struct audit_object *audit_object_of_caller(const void *pc)
{
	struct audit_object *obj = audit_object_by_address(pc);
	const void *traced;
	if (obj == NULL && (traced = trace_closure_caller_pc()) != NULL)
		obj = audit_object_by_address(traced);
	return obj;
}
