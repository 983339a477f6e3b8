/* The objects ld.so would load for a program, found as ld.so finds them, with their socket imports. */
#ifndef VIAUDIT_CLI_ELF_CLOSURE_H
#define VIAUDIT_CLI_ELF_CLOSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <viaudit/symbols.h>

/* How an object of the closure was found. */
enum closure_source {
	CLOSURE_FROM_PROGRAM,         /* the executable, named with a '/' */
	CLOSURE_FROM_PATH,            /* the executable, found in $PATH */
	CLOSURE_FROM_INTERPRETER,     /* the executable's PT_INTERP */
	CLOSURE_FROM_NEEDED_PATH,     /* a DT_NEEDED entry with a '/' in it */
	CLOSURE_FROM_RPATH,           /* DT_RPATH of the loader or of the loader's loaders */
	CLOSURE_FROM_LD_LIBRARY_PATH, /* LD_LIBRARY_PATH */
	CLOSURE_FROM_RUNPATH,         /* DT_RUNPATH of the loader */
	CLOSURE_FROM_LDCACHE,         /* /etc/ld.so.cache */
	CLOSURE_FROM_DEFAULT_DIR,     /* the system directories */
	CLOSURE_NOT_FOUND,            /* ld.so would fail to start the program */
};

/* Bits of closure_object.imports[]: how an object reaches an imported function. */
enum closure_import_kind {
	CLOSURE_IMPORT_PLT = 1u << 0, /* R_X86_64_JUMP_SLOT: a call through the PLT */
	CLOSURE_IMPORT_GOT = 1u << 1, /* R_X86_64_GLOB_DAT: -fno-plt call or function pointer */
};

#define CLOSURE_NO_LOADER ((size_t)-1)

struct closure_object {
	char *name;   /* what was asked for: the DT_NEEDED entry, or the program's or PT_INTERP path */
	char *path;   /* the file ld.so would open (as found, not resolved); NULL when not found */
	char *soname; /* DT_SONAME, or NULL */
	enum closure_source source;
	size_t loader; /* index of the object whose DT_NEEDED first asked for this one */
	bool is_main;
	bool dynamic;        /* has a dynamic section; false for a static program */
	const char *problem; /* why the object's dynamic section could not be read, or NULL */
	uint8_t imports[VI_SYM_COUNT]; /* enum closure_import_kind bits, per rebound symbol */

	/* Used while walking: what ld.so reads from the dynamic section. */
	char *rpath;   /* DT_RPATH, or NULL (also NULL when DT_RUNPATH is present, as in ld.so) */
	char *runpath; /* DT_RUNPATH, or NULL */
	char *origin;  /* what $ORIGIN expands to for this object */
	bool nodeflib; /* DF_1_NODEFLIB: no ld.so.cache, no system directories */
	size_t nneeded;
	char **needed;
	size_t naliases; /* other names that reached this object (dedupe as ld.so does) */
	char **aliases;
	dev_t dev;
	ino_t ino;
};

/* Where to search besides the objects' own paths; NULL fields take the defaults given. */
struct closure_options {
	const char *ld_library_path; /* NULL: none */
	const char *exec_path;       /* $PATH for a program named without '/'; NULL: "/bin:/usr/bin" */
	const char *cache_path;      /* NULL: /etc/ld.so.cache */
};

struct closure {
	size_t count;
	struct closure_object *objects; /* load order (breadth first); objects[0] is the program */
	char error[256];                /* why closure_build failed, without the program's name */
};

/*
 * Walks the DT_NEEDED closure of `program` breadth first, as ld.so does, and reads each
 * object's socket imports. A library that cannot be found is an object with source
 * CLOSURE_NOT_FOUND, not an error. Returns 0, or -errno when the program itself cannot be
 * used (-ENOENT, -EACCES, -ENOEXEC for a file that is not an x86-64 ELF executable or
 * shared object, -ENOMEM), with closure->error saying why. Free with closure_free either way.
 */
int closure_build(struct closure *closure, const char *program,
		  const struct closure_options *options);

void closure_free(struct closure *closure);

/* "rpath", "ld.so.cache", ...: how an object was found, for messages. */
const char *closure_source_name(enum closure_source source);

#endif
