/*
 * dlopen and dlmopen, rebound so that the GLOB_DAT slots of what they load get patched.
 *
 * In glibc 2.36 la_activity(LA_ACT_CONSISTENT) arrives before a dlopen'd object is
 * relocated (fixed in 2.41), so the only moment after relocation is when dlopen returns.
 * The real dlopen takes the caller's namespace and search path (DT_RPATH, DT_RUNPATH,
 * $ORIGIN) from its return address, which here would be the audit module, whose namespace
 * is not the program's. So the replacement asks for the base namespace explicitly with
 * dlmopen(LM_ID_BASE, ...) and resolves the caller's own search path and $ORIGIN itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libc.h>
#include <log.h>

#include "audit.h"

/* Expands $ORIGIN / ${ORIGIN} in `in` with the directory of `origin_path`. Returns 0 or -ENAMETOOLONG. */
static int dlopen_expand_origin(const char *in, const char *origin_path, char *out, size_t size)
{
	const char *slash = strrchr(origin_path, '/');
	size_t dirlen = slash != NULL ? (size_t)(slash - origin_path) : 0;
	size_t o = 0;
	while (*in != '\0') {
		size_t skip = 0;
		if (strncmp(in, "$ORIGIN", 7) == 0)
			skip = 7;
		else if (strncmp(in, "${ORIGIN}", 9) == 0)
			skip = 9;
		if (skip != 0) {
			if (o + dirlen >= size)
				return -ENAMETOOLONG;
			memcpy(out + o, origin_path, dirlen);
			o += dirlen;
			in += skip;
			continue;
		}
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		out[o++] = *in++;
	}
	out[o] = '\0';
	return 0;
}

/* Looks for `file` in the ':'-separated `dirs` (with $ORIGIN of `obj`); fills `out` on a hit. */
static bool dlopen_search(const char *dirs, const struct audit_object *obj, const char *file,
			  char *out, size_t size)
{
	char expanded[PATH_MAX];
	if (dirs == NULL || dlopen_expand_origin(dirs, obj->vi.path, expanded, sizeof(expanded)) < 0)
		return false;
	for (char *dir = expanded; dir != NULL;) {
		char *colon = strchr(dir, ':');
		if (colon != NULL)
			*colon = '\0';
		if (dir[0] != '\0') {
			int n = snprintf(out, size, "%s/%s", dir, file);
			if (n > 0 && (size_t)n < size && access(out, R_OK) == 0)
				return true;
		}
		dir = colon != NULL ? colon + 1 : NULL;
	}
	return false;
}

/*
 * The name to hand to dlmopen(LM_ID_BASE, ...) so that it finds what dlopen called from
 * `caller` would have found: $ORIGIN expanded, and the caller's DT_RPATH (when it has no
 * DT_RUNPATH), LD_LIBRARY_PATH and DT_RUNPATH searched in ld.so's order. Anything not
 * found there is left to ld.so (the cache, the default directories, the executable's RPATH).
 */
static const char *dlopen_resolve(const struct audit_object *caller, const char *file, char *buf,
				  size_t size)
{
	if (caller == NULL)
		return file;
	if (strchr(file, '$') != NULL)
		return dlopen_expand_origin(file, caller->vi.path, buf, size) == 0 ? buf : file;
	if (strchr(file, '/') != NULL)
		return file;
	/* Already loaded under this name: ld.so matches it without a search. */
	void *h = vi_libc.dlmopen(LM_ID_BASE, file, RTLD_LAZY | RTLD_NOLOAD);
	if (h != NULL) {
		dlclose(h); /* only drops the reference RTLD_NOLOAD took; the module's dlclose is ld.so's */
		return file;
	}
	if (caller->dyn.runpath == NULL && dlopen_search(caller->dyn.rpath, caller, file, buf, size))
		return buf;
	if (dlopen_search(getenv("LD_LIBRARY_PATH"), caller, file, buf, size))
		return buf;
	if (dlopen_search(caller->dyn.runpath, caller, file, buf, size))
		return buf;
	return file;
}

static void *dlopen_in_base(const void *caller_pc, const char *file, int mode)
{
	if (file == NULL)
		return vi_libc.dlopen(NULL, mode); /* the main program: no namespace question */
	char buf[PATH_MAX];
	const char *name = dlopen_resolve(audit_object_of_caller(caller_pc), file, buf, sizeof(buf));
	void *handle = vi_libc.dlmopen(LM_ID_BASE, name, mode);
	if (handle != NULL)
		audit_got_patch_all();
	return handle;
}

void *audit_dlopen(const char *file, int mode)
{
	return dlopen_in_base(__builtin_return_address(0), file, mode);
}

void *audit_dlmopen(Lmid_t lmid, const char *file, int mode)
{
	if (lmid != LM_ID_BASE)
		return vi_libc.dlmopen(lmid, file, mode); /* other namespaces are not audited */
	return dlopen_in_base(__builtin_return_address(0), file, mode);
}
