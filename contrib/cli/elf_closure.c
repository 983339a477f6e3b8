/* Walks a program's DT_NEEDED closure with libelf, searching for each library as ld.so does. */
#include "elf_closure.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldcache.h"

#define CLOSURE_DEFAULT_CACHE "/etc/ld.so.cache"
#define CLOSURE_DEFAULT_EXEC_PATH "/bin:/usr/bin" /* confstr(_CS_PATH), as execvp uses */
#define CLOSURE_MAX_OBJECTS 4096                 /* a sanity bound, far above real programs */

/*
 * What `$LIB` expands to: Debian's glibc is built with the multiarch directory here, where
 * upstream x86-64 glibc uses "lib64" (checked with LD_DEBUG=libs on Debian 12).
 */
#define CLOSURE_DST_LIB "lib/x86_64-linux-gnu"

/*
 * ld.so's system search path on Debian 12 (`ld.so --help`, "system search path"). Debian's
 * glibc does not search /lib64 or /usr/lib64 (on Debian /lib64 holds only the ld.so link),
 * so neither is listed: a library found only there would not be loaded.
 */
static const char *const closure_system_dirs[] = {
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib",
	"/usr/lib",
};

VI_SYMBOL_TABLE(closure_symbols);

struct closure_walk {
	struct closure *closure;
	const char *ld_library_path;
	const char *cache_path;
	struct ldcache cache;
	bool cache_tried;
	bool cache_ok;
	const char *platform;
	/* The interpreter is loaded before anything else, but listed where ld.so lists it: at
	 * the first DT_NEEDED that names it, else last. */
	struct closure_object interpreter;
	bool has_interpreter;
	bool interpreter_placed;
};

/* The dynamic-section values the walk reads. */
struct closure_dynamic {
	GElf_Addr strtab, symtab, rela, jmprel;
	GElf_Xword strsz, relasz, pltrelsz, pltrel, flags_1;
	GElf_Xword soname, rpath, runpath; /* string table offsets, valid when has_* */
	bool has_strtab, has_symtab, has_soname, has_rpath, has_runpath;
	size_t nneeded;
	GElf_Xword *needed; /* string table offsets */
};

static void closure_object_clear(struct closure_object *object)
{
	free(object->name);
	free(object->path);
	free(object->soname);
	free(object->rpath);
	free(object->runpath);
	free(object->origin);
	for (size_t i = 0; i < object->nneeded; i++)
		free(object->needed[i]);
	free(object->needed);
	for (size_t i = 0; i < object->naliases; i++)
		free(object->aliases[i]);
	free(object->aliases);
	memset(object, 0, sizeof(*object));
}

void closure_free(struct closure *closure)
{
	for (size_t i = 0; i < closure->count; i++)
		closure_object_clear(&closure->objects[i]);
	free(closure->objects);
	closure->objects = NULL;
	closure->count = 0;
}

const char *closure_source_name(enum closure_source source)
{
	switch (source) {
	case CLOSURE_FROM_PROGRAM:
		return "program";
	case CLOSURE_FROM_PATH:
		return "program, found in PATH";
	case CLOSURE_FROM_INTERPRETER:
		return "interpreter";
	case CLOSURE_FROM_NEEDED_PATH:
		return "path in DT_NEEDED";
	case CLOSURE_FROM_RPATH:
		return "rpath";
	case CLOSURE_FROM_LD_LIBRARY_PATH:
		return "LD_LIBRARY_PATH";
	case CLOSURE_FROM_RUNPATH:
		return "runpath";
	case CLOSURE_FROM_LDCACHE:
		return "ld.so.cache";
	case CLOSURE_FROM_DEFAULT_DIR:
		return "default dir";
	case CLOSURE_NOT_FOUND:
		return "not found";
	}
	return "?";
}

static void closure_set_error(struct closure *closure, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

static void closure_set_error(struct closure *closure, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	vsnprintf(closure->error, sizeof(closure->error), format, ap);
	va_end(ap);
}

/* The index of the rebound symbol called `name`, or -1. */
static int closure_symbol_id(const char *name)
{
	for (int i = 0; i < VI_SYM_COUNT; i++) {
		if (strcmp(closure_symbols[i].name, name) == 0)
			return i;
	}
	return -1;
}

/* The file offset of `vaddr` and how many file bytes of its segment follow; returns 0 or -EINVAL. */
static int closure_elf_locate(Elf *elf, size_t phnum, GElf_Addr vaddr, GElf_Off *offset,
			      size_t *avail)
{
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr phdr;
		if (gelf_getphdr(elf, (int)i, &phdr) == NULL || phdr.p_type != PT_LOAD)
			continue;
		if (vaddr >= phdr.p_vaddr && vaddr - phdr.p_vaddr < phdr.p_filesz) {
			*offset = phdr.p_offset + (vaddr - phdr.p_vaddr);
			*avail = phdr.p_filesz - (vaddr - phdr.p_vaddr);
			return 0;
		}
	}
	return -EINVAL;
}

/* `size` bytes at `vaddr`, converted to `type`, or NULL when they are not all in the file. */
static Elf_Data *closure_elf_chunk(Elf *elf, size_t phnum, GElf_Addr vaddr, size_t size,
				  Elf_Type type)
{
	GElf_Off offset;
	size_t avail;
	if (size == 0 || closure_elf_locate(elf, phnum, vaddr, &offset, &avail) < 0 || size > avail)
		return NULL;
	return elf_getdata_rawchunk(elf, (int64_t)offset, size, type);
}

/* The NUL-terminated string at `index` of a string table, or NULL when it runs off the end. */
static const char *closure_elf_string(const Elf_Data *strtab, GElf_Xword index)
{
	if (strtab == NULL || index >= strtab->d_size)
		return NULL;
	const char *s = (const char *)strtab->d_buf + index;
	return memchr(s, '\0', strtab->d_size - index) != NULL ? s : NULL;
}

/* Reads the dynamic section's entries into `dyn`; returns 0, -EINVAL or -ENOMEM. */
static int closure_read_dynamic(Elf *elf, const GElf_Phdr *phdr, struct closure_dynamic *dyn)
{
	Elf_Data *data = elf_getdata_rawchunk(elf, (int64_t)phdr->p_offset, phdr->p_filesz,
					      ELF_T_DYN);
	if (data == NULL)
		return -EINVAL;
	/* Only ELF64 objects get here, and libelf has converted the chunk to this host. */
	const Elf64_Dyn *entries = data->d_buf;
	size_t n = data->d_size / sizeof(Elf64_Dyn);
	size_t nneeded = 0;
	for (size_t i = 0; i < n && entries[i].d_tag != DT_NULL; i++)
		nneeded += entries[i].d_tag == DT_NEEDED;
	dyn->needed = calloc(nneeded ? nneeded : 1, sizeof(*dyn->needed));
	if (dyn->needed == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n && entries[i].d_tag != DT_NULL; i++) {
		GElf_Xword v = entries[i].d_un.d_val;
		switch (entries[i].d_tag) {
		case DT_NEEDED:
			dyn->needed[dyn->nneeded++] = v;
			break;
		case DT_SONAME:
			dyn->soname = v;
			dyn->has_soname = true;
			break;
		case DT_RPATH:
			dyn->rpath = v;
			dyn->has_rpath = true;
			break;
		case DT_RUNPATH:
			dyn->runpath = v;
			dyn->has_runpath = true;
			break;
		case DT_STRTAB:
			dyn->strtab = v;
			dyn->has_strtab = true;
			break;
		case DT_STRSZ:
			dyn->strsz = v;
			break;
		case DT_SYMTAB:
			dyn->symtab = v;
			dyn->has_symtab = true;
			break;
		case DT_RELA:
			dyn->rela = v;
			break;
		case DT_RELASZ:
			dyn->relasz = v;
			break;
		case DT_JMPREL:
			dyn->jmprel = v;
			break;
		case DT_PLTRELSZ:
			dyn->pltrelsz = v;
			break;
		case DT_PLTREL:
			dyn->pltrel = v;
			break;
		case DT_FLAGS_1:
			dyn->flags_1 = v;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Marks the rebound symbols `object` imports: undefined .dynsym entries that a JUMP_SLOT
 * (PLT) or GLOB_DAT (GOT) relocation refers to, in DT_RELA and DT_JMPREL. Returns NULL, or
 * a reason the relocations could not be read.
 */
static const char *closure_read_imports(Elf *elf, size_t phnum, const struct closure_dynamic *dyn,
					const Elf_Data *strtab, struct closure_object *object)
{
	const struct {
		GElf_Addr vaddr;
		GElf_Xword size;
	} ranges[2] = {
		{ dyn->rela, dyn->relasz },
		{ dyn->jmprel, dyn->pltrel == DT_RELA ? dyn->pltrelsz : 0 },
	};
	const Elf64_Rela *relocs[2] = { NULL, NULL };
	size_t nrelocs[2] = { 0, 0 };
	size_t max_symbol = 0;
	bool any = false;
	for (int r = 0; r < 2; r++) {
		size_t size = ranges[r].size - ranges[r].size % sizeof(Elf64_Rela);
		if (size == 0)
			continue;
		Elf_Data *data = closure_elf_chunk(elf, phnum, ranges[r].vaddr, size, ELF_T_RELA);
		if (data == NULL)
			return "relocations outside the file";
		relocs[r] = data->d_buf;
		nrelocs[r] = data->d_size / sizeof(Elf64_Rela);
		for (size_t i = 0; i < nrelocs[r]; i++) {
			unsigned long type = ELF64_R_TYPE(relocs[r][i].r_info);
			size_t sym = ELF64_R_SYM(relocs[r][i].r_info);
			if ((type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT) && sym != 0) {
				any = true;
				if (sym > max_symbol)
					max_symbol = sym;
			}
		}
	}
	if (!any)
		return NULL;
	if (!dyn->has_symtab || max_symbol >= SIZE_MAX / sizeof(Elf64_Sym) - 1)
		return "no dynamic symbol table";
	Elf_Data *symdata = closure_elf_chunk(elf, phnum, dyn->symtab,
					      (max_symbol + 1) * sizeof(Elf64_Sym), ELF_T_SYM);
	if (symdata == NULL)
		return "dynamic symbols outside the file";
	const Elf64_Sym *symbols = symdata->d_buf;
	for (int r = 0; r < 2; r++) {
		for (size_t i = 0; i < nrelocs[r]; i++) {
			unsigned long type = ELF64_R_TYPE(relocs[r][i].r_info);
			size_t sym = ELF64_R_SYM(relocs[r][i].r_info);
			if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || sym == 0 ||
			    symbols[sym].st_shndx != SHN_UNDEF)
				continue;
			const char *name = closure_elf_string(strtab, symbols[sym].st_name);
			int id = name != NULL ? closure_symbol_id(name) : -1;
			if (id >= 0)
				object->imports[id] |= type == R_X86_64_JUMP_SLOT ? CLOSURE_IMPORT_PLT
										  : CLOSURE_IMPORT_GOT;
		}
	}
	return NULL;
}

/* Copies string `index` of `strtab` into *out (NULL when absent); returns 0 or -ENOMEM. */
static int closure_copy_string(const Elf_Data *strtab, bool present, GElf_Xword index, char **out)
{
	*out = NULL;
	const char *s = present ? closure_elf_string(strtab, index) : NULL;
	if (s != NULL && (*out = strdup(s)) == NULL)
		return -ENOMEM;
	return 0;
}

/*
 * Reads what the walk needs from the dynamic section of an open ELF64 object into `object`.
 * A dynamic section that cannot be read sets object->problem. Returns 0 or -ENOMEM.
 */
static int closure_object_read_dynamic(struct closure_object *object, Elf *elf, size_t phnum,
				       const GElf_Phdr *dynamic_phdr)
{
	struct closure_dynamic dyn = { 0 };
	int err = closure_read_dynamic(elf, dynamic_phdr, &dyn);
	if (err == -EINVAL) {
		object->problem = "dynamic section outside the file";
		return 0;
	}
	if (err < 0)
		return err;
	Elf_Data *strtab = NULL;
	if (dyn.has_strtab)
		strtab = closure_elf_chunk(elf, phnum, dyn.strtab, dyn.strsz, ELF_T_BYTE);
	if (strtab == NULL) {
		object->problem = "dynamic string table outside the file";
		free(dyn.needed);
		return 0;
	}
	object->nodeflib = (dyn.flags_1 & DF_1_NODEFLIB) != 0;
	/* ld.so ignores DT_RPATH when DT_RUNPATH is present (elf/get-dynamic-info.h). */
	if (closure_copy_string(strtab, dyn.has_soname, dyn.soname, &object->soname) < 0 ||
	    closure_copy_string(strtab, dyn.has_runpath, dyn.runpath, &object->runpath) < 0 ||
	    closure_copy_string(strtab, dyn.has_rpath && !dyn.has_runpath, dyn.rpath,
				&object->rpath) < 0)
		goto out_of_memory;
	object->needed = calloc(dyn.nneeded ? dyn.nneeded : 1, sizeof(*object->needed));
	if (object->needed == NULL)
		goto out_of_memory;
	for (size_t i = 0; i < dyn.nneeded; i++) {
		char *name;
		if (closure_copy_string(strtab, true, dyn.needed[i], &name) < 0)
			goto out_of_memory;
		if (name == NULL) {
			object->problem = "DT_NEEDED outside the string table";
			continue;
		}
		object->needed[object->nneeded++] = name;
	}
	const char *problem = closure_read_imports(elf, phnum, &dyn, strtab, object);
	if (problem != NULL)
		object->problem = problem;
	free(dyn.needed);
	return 0;
out_of_memory:
	free(dyn.needed);
	return -ENOMEM;
}

/*
 * Opens `path` and reads it into `object` (path, dev/ino, dynamic section, imports). With
 * `interpreter`, also returns the PT_INTERP path (NULL when there is none). Returns 0 or
 * -errno, with `why` set: -ENOEXEC for a file that is not an x86-64 ELF64 executable or
 * shared object.
 */
static int closure_object_read(struct closure_object *object, const char *path,
			       char **interpreter, char *why, size_t whysize)
{
	int err = 0;
	Elf *elf = NULL;
	if (interpreter != NULL)
		*interpreter = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whysize, "%s", strerror(-err));
		return err;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		snprintf(why, whysize, "%s", strerror(-err));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		snprintf(why, whysize, "%s", strerror(EISDIR));
		goto out;
	}
	object->dev = st.st_dev;
	object->ino = st.st_ino;
	if ((object->path = strdup(path)) == NULL)
		goto out_of_memory;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	GElf_Ehdr ehdr;
	if (elf == NULL || elf_kind(elf) != ELF_K_ELF || gelf_getehdr(elf, &ehdr) == NULL) {
		err = -ENOEXEC;
		snprintf(why, whysize, "not an ELF file");
		goto out;
	}
	if (gelf_getclass(elf) != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
		err = -ENOEXEC;
		snprintf(why, whysize, "not an x86-64 ELF file");
		goto out;
	}
	if (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN) {
		err = -ENOEXEC;
		snprintf(why, whysize, "not an executable or shared object");
		goto out;
	}
	size_t phnum;
	if (elf_getphdrnum(elf, &phnum) < 0) {
		err = -ENOEXEC;
		snprintf(why, whysize, "corrupt ELF program headers");
		goto out;
	}
	GElf_Phdr dynamic_phdr;
	bool has_dynamic = false;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr phdr;
		if (gelf_getphdr(elf, (int)i, &phdr) == NULL)
			continue;
		if (phdr.p_type == PT_DYNAMIC) {
			dynamic_phdr = phdr;
			has_dynamic = true;
		} else if (phdr.p_type == PT_INTERP && interpreter != NULL && *interpreter == NULL) {
			Elf_Data *data = elf_getdata_rawchunk(elf, (int64_t)phdr.p_offset,
							      phdr.p_filesz, ELF_T_BYTE);
			if (data == NULL || memchr(data->d_buf, '\0', data->d_size) == NULL) {
				object->problem = "PT_INTERP outside the file";
				continue;
			}
			if ((*interpreter = strdup(data->d_buf)) == NULL)
				goto out_of_memory;
		}
	}
	object->dynamic = has_dynamic;
	if (has_dynamic && closure_object_read_dynamic(object, elf, phnum, &dynamic_phdr) < 0)
		goto out_of_memory;
	goto out;
out_of_memory:
	err = -ENOMEM;
	snprintf(why, whysize, "%s", strerror(ENOMEM));
out:
	if (err < 0 && interpreter != NULL) {
		free(*interpreter);
		*interpreter = NULL;
	}
	elf_end(elf);
	close(fd);
	return err;
}

/*
 * Whether `path` is a file ld.so would accept for a DT_NEEDED entry (an x86-64 ELF64 shared
 * object; ld.so skips other files and keeps searching). Fills `st` when it is.
 */
static bool closure_probe_library(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf64_Ehdr ehdr;
	bool ok = fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
		  pread(fd, &ehdr, sizeof(ehdr), 0) == (ssize_t)sizeof(ehdr) &&
		  memcmp(ehdr.e_ident, ELFMAG, SELFMAG) == 0 &&
		  ehdr.e_ident[EI_CLASS] == ELFCLASS64 && ehdr.e_ident[EI_DATA] == ELFDATA2LSB &&
		  ehdr.e_machine == EM_X86_64 && ehdr.e_type == ET_DYN;
	close(fd);
	return ok;
}

/* Appends `s` to a string buffer; returns 0 or -ENOMEM. */
static int closure_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t cap2 = (*cap ? *cap : 64);
		while (cap2 < *len + n + 1)
			cap2 *= 2;
		char *buf2 = realloc(*buf, cap2);
		if (buf2 == NULL)
			return -ENOMEM;
		*buf = buf2;
		*cap = cap2;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * If `text` (just after a '$') names the token `token`, as `NAME` or `{NAME}`, returns the
 * length to skip; else 0. As in ld.so (elf/dl-load.c, is_dst), an unbraced name must not
 * be followed by an identifier character.
 */
static size_t closure_token_length(const char *text, const char *token)
{
	size_t len = strlen(token);
	if (text[0] == '{')
		return strncmp(text + 1, token, len) == 0 && text[1 + len] == '}' ? len + 2 : 0;
	if (strncmp(text, token, len) != 0 || isalnum((unsigned char)text[len]) ||
	    text[len] == '_')
		return 0;
	return len;
}

/*
 * Expands $ORIGIN, $LIB and $PLATFORM (also as ${...}) in `text` into *out. An element that
 * uses $ORIGIN when the origin is unknown cannot be used: *out is then NULL, as ld.so drops
 * it. Other `$` sequences are kept as they are. Returns 0 or -ENOMEM.
 */
static int closure_expand_tokens(const char *text, const char *origin, const char *platform,
				 char **out)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	*out = NULL;
	if (closure_append(&buf, &len, &cap, "", 0) < 0)
		return -ENOMEM;
	for (const char *p = text; *p != '\0';) {
		const char *value = NULL;
		size_t skip = 0;
		if (*p == '$') {
			if ((skip = closure_token_length(p + 1, "ORIGIN")) != 0) {
				if (origin == NULL) {
					free(buf);
					return 0;
				}
				value = origin;
			} else if ((skip = closure_token_length(p + 1, "LIB")) != 0) {
				value = CLOSURE_DST_LIB;
			} else if ((skip = closure_token_length(p + 1, "PLATFORM")) != 0) {
				value = platform;
			}
		}
		int err = value != NULL ? closure_append(&buf, &len, &cap, value, strlen(value))
					: closure_append(&buf, &len, &cap, p, 1);
		if (err < 0) {
			free(buf);
			return err;
		}
		p += value != NULL ? skip + 1 : 1;
	}
	*out = buf;
	return 0;
}

/* "dir/name", without doubling a trailing slash of `dir`; "name" for an empty dir (the cwd). */
static char *closure_join(const char *dir, const char *name)
{
	char *path;
	size_t n = strlen(dir);
	const char *sep = n == 0 || dir[n - 1] == '/' ? "" : "/";
	if (asprintf(&path, "%s%s%s", dir, sep, name) < 0)
		return NULL;
	return path;
}

/*
 * Searches the directories of `list` (split at any of `separators`) for library `name`,
 * expanding tokens for `owner` (NULL: $ORIGIN unknown). Empty elements are skipped, or
 * with `empty_is_cwd` (LD_LIBRARY_PATH) mean the current directory, as in ld.so. Returns
 * 1 with *found set, 0 when not found, or -ENOMEM.
 */
static int closure_search_list(const struct closure_walk *walk, const char *list,
			       const char *separators, bool empty_is_cwd,
			       const struct closure_object *owner, const char *name, char **found,
			       struct stat *st)
{
	char *copy = strdup(list);
	if (copy == NULL)
		return -ENOMEM;
	int result = 0;
	char *rest = copy, *element;
	while (result == 0 && (element = strsep(&rest, separators)) != NULL) {
		if (*element == '\0' && !empty_is_cwd)
			continue;
		char *dir;
		if (closure_expand_tokens(element, owner ? owner->origin : NULL, walk->platform,
					  &dir) < 0) {
			result = -ENOMEM;
			break;
		}
		if (dir == NULL)
			continue;
		if (*dir == '\0' && !empty_is_cwd) {
			free(dir);
			continue;
		}
		char *path = closure_join(dir, name);
		free(dir);
		if (path == NULL) {
			result = -ENOMEM;
			break;
		}
		if (closure_probe_library(path, st)) {
			*found = path;
			result = 1;
		} else {
			free(path);
		}
	}
	free(copy);
	return result;
}

/* Looks `name` up in the ld.so cache, reading the cache the first time. Returns as above. */
static int closure_search_cache(struct closure_walk *walk, const char *name, char **found,
				struct stat *st)
{
	if (!walk->cache_tried) {
		walk->cache_tried = true;
		/* ld.so carries on without a cache it cannot read; so does the walk. */
		walk->cache_ok = ldcache_open(&walk->cache, walk->cache_path) == 0;
	}
	if (!walk->cache_ok)
		return 0;
	const char *path = ldcache_lookup(&walk->cache, name, LDCACHE_FLAGS_X86_64);
	if (path == NULL || !closure_probe_library(path, st))
		return 0;
	*found = strdup(path);
	return *found != NULL ? 1 : -ENOMEM;
}

/*
 * Finds library `name` (no '/') for the object at index `loader`, in ld.so's order
 * (elf/dl-load.c, _dl_map_object): the DT_RPATH of the loader and of its loaders, unless
 * the loader has a DT_RUNPATH; LD_LIBRARY_PATH; the loader's DT_RUNPATH; the ld.so cache and
 * the system directories, unless the loader is DF_1_NODEFLIB. The glibc-hwcaps and legacy
 * hwcap subdirectories ld.so also tries in each directory are not searched. Returns 1 with
 * *found and *source set, 0 when not found, or -ENOMEM.
 */
static int closure_search(struct closure_walk *walk, size_t loader, const char *name,
			  char **found, enum closure_source *source, struct stat *st)
{
	const struct closure_object *objects = walk->closure->objects;
	int r;
	if (objects[loader].runpath == NULL) {
		for (size_t i = loader; i != CLOSURE_NO_LOADER; i = objects[i].loader) {
			if (objects[i].rpath == NULL)
				continue;
			r = closure_search_list(walk, objects[i].rpath, ":", false, &objects[i], name,
						found, st);
			if (r != 0) {
				*source = CLOSURE_FROM_RPATH;
				return r;
			}
		}
	}
	if (walk->ld_library_path != NULL && *walk->ld_library_path != '\0') {
		/* $ORIGIN in LD_LIBRARY_PATH is the program's (elf/dl-load.c, _dl_init_paths). */
		r = closure_search_list(walk, walk->ld_library_path, ":;", true, &objects[0], name,
					found, st);
		if (r != 0) {
			*source = CLOSURE_FROM_LD_LIBRARY_PATH;
			return r;
		}
	}
	if (objects[loader].runpath != NULL) {
		r = closure_search_list(walk, objects[loader].runpath, ":", false, &objects[loader],
					name, found, st);
		if (r != 0) {
			*source = CLOSURE_FROM_RUNPATH;
			return r;
		}
	}
	if (objects[loader].nodeflib)
		return 0;
	r = closure_search_cache(walk, name, found, st);
	if (r != 0) {
		*source = CLOSURE_FROM_LDCACHE;
		return r;
	}
	for (size_t i = 0; i < sizeof(closure_system_dirs) / sizeof(closure_system_dirs[0]); i++) {
		*found = closure_join(closure_system_dirs[i], name);
		if (*found == NULL)
			return -ENOMEM;
		if (closure_probe_library(*found, st)) {
			*source = CLOSURE_FROM_DEFAULT_DIR;
			return 1;
		}
		free(*found);
		*found = NULL;
	}
	return 0;
}

/* Whether an object answers to `name` the way ld.so's _dl_name_match_p sees it. */
static bool closure_object_has_name(const struct closure_object *object, const char *name)
{
	if ((object->name && strcmp(object->name, name) == 0) ||
	    (object->soname && strcmp(object->soname, name) == 0) ||
	    (object->path && !object->is_main && strcmp(object->path, name) == 0))
		return true;
	for (size_t i = 0; i < object->naliases; i++) {
		if (strcmp(object->aliases[i], name) == 0)
			return true;
	}
	return false;
}

/* Records that `name` also reaches `object`; returns 0 or -ENOMEM. */
static int closure_object_add_alias(struct closure_object *object, const char *name)
{
	if (closure_object_has_name(object, name))
		return 0;
	char **aliases = realloc(object->aliases, (object->naliases + 1) * sizeof(*aliases));
	if (aliases == NULL)
		return -ENOMEM;
	object->aliases = aliases;
	if ((aliases[object->naliases] = strdup(name)) == NULL)
		return -ENOMEM;
	object->naliases++;
	return 0;
}

/* Makes room for one more object; returns its index or -ENOMEM (-E2BIG past the bound). */
static ssize_t closure_push(struct closure *closure, struct closure_object *object)
{
	if (closure->count >= CLOSURE_MAX_OBJECTS)
		return -E2BIG;
	struct closure_object *objects =
		realloc(closure->objects, (closure->count + 1) * sizeof(*objects));
	if (objects == NULL)
		return -ENOMEM;
	closure->objects = objects;
	objects[closure->count] = *object;
	memset(object, 0, sizeof(*object));
	return (ssize_t)closure->count++;
}

/* The directory of `path` made absolute, as ld.so sets a library's origin; NULL when out of memory. */
static char *closure_origin_of(const char *path)
{
	char *absolute;
	if (path[0] == '/') {
		absolute = strdup(path);
	} else {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return strdup("");
		absolute = closure_join(cwd, path);
	}
	if (absolute == NULL)
		return NULL;
	char *slash = strrchr(absolute, '/');
	if (slash == absolute)
		slash[1] = '\0';
	else
		*slash = '\0';
	return absolute;
}

/* Appends the interpreter to the list if it is not there yet; returns 0 or -errno. */
static int closure_place_interpreter(struct closure_walk *walk)
{
	if (!walk->has_interpreter || walk->interpreter_placed)
		return 0;
	walk->interpreter_placed = true;
	ssize_t index = closure_push(walk->closure, &walk->interpreter);
	return index < 0 ? (int)index : 0;
}

/*
 * Resolves DT_NEEDED entry `name` of the object at index `loader`: an object already
 * loaded under that name or from the same file is reused (alias recorded), else the found
 * or not-found library is appended. Returns 0 or -errno.
 */
static int closure_add_needed(struct closure_walk *walk, size_t loader, const char *name)
{
	struct closure *closure = walk->closure;
	if (strcmp(name, "linux-vdso.so.1") == 0)
		return 0; /* the kernel's, mapped before ld.so runs */
	for (size_t i = 0; i < closure->count; i++) {
		if (closure_object_has_name(&closure->objects[i], name))
			return 0;
	}
	if (walk->has_interpreter && !walk->interpreter_placed &&
	    closure_object_has_name(&walk->interpreter, name))
		return closure_place_interpreter(walk);

	struct closure_object object = { .loader = loader, .source = CLOSURE_NOT_FOUND };
	char *found = NULL;
	struct stat st;
	int r;
	if (strchr(name, '/') != NULL) {
		r = closure_expand_tokens(name, closure->objects[loader].origin, walk->platform,
					  &found);
		if (r == 0 && found != NULL && !closure_probe_library(found, &st)) {
			free(found);
			found = NULL;
		}
		object.source = CLOSURE_FROM_NEEDED_PATH;
	} else {
		r = closure_search(walk, loader, name, &found, &object.source, &st);
	}
	if (r < 0)
		return r;
	if (found != NULL) {
		for (size_t i = 0; i < closure->count; i++) {
			struct closure_object *other = &closure->objects[i];
			if (other->path != NULL && other->dev == st.st_dev && other->ino == st.st_ino) {
				free(found);
				return closure_object_add_alias(other, name);
			}
		}
		if (walk->has_interpreter && !walk->interpreter_placed &&
		    walk->interpreter.dev == st.st_dev && walk->interpreter.ino == st.st_ino) {
			free(found);
			if (closure_object_add_alias(&walk->interpreter, name) < 0)
				return -ENOMEM;
			return closure_place_interpreter(walk);
		}
	} else {
		object.source = CLOSURE_NOT_FOUND;
	}
	if ((object.name = strdup(name)) == NULL)
		goto out_of_memory;
	if (found != NULL) {
		char why[128];
		r = closure_object_read(&object, found, NULL, why, sizeof(why));
		if (r == -ENOMEM)
			goto out_of_memory;
		if (r < 0 && object.problem == NULL)
			object.problem = "unreadable"; /* changed since it was probed */
		if ((object.origin = closure_origin_of(found)) == NULL)
			goto out_of_memory;
		free(found);
		found = NULL;
	}
	ssize_t index = closure_push(closure, &object);
	if (index < 0) {
		closure_object_clear(&object);
		return (int)index;
	}
	return 0;
out_of_memory:
	free(found);
	closure_object_clear(&object);
	return -ENOMEM;
}

/* Finds a program named without '/' in `exec_path` as execvp does; returns a new path or NULL. */
static char *closure_find_program(const char *name, const char *exec_path)
{
	char *copy = strdup(exec_path);
	if (copy == NULL)
		return NULL;
	char *rest = copy, *dir, *result = NULL;
	while (result == NULL && (dir = strsep(&rest, ":")) != NULL) {
		char *path = closure_join(*dir ? dir : ".", name);
		struct stat st;
		if (path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(path, X_OK) == 0)
			result = path;
		else
			free(path);
	}
	free(copy);
	return result;
}

/* Reads the program (objects[0]) and its interpreter; returns 0 or -errno with the error set. */
static int closure_add_program(struct closure_walk *walk, const char *program,
			       const char *exec_path)
{
	struct closure *closure = walk->closure;
	struct closure_object main_object = { .is_main = true, .loader = CLOSURE_NO_LOADER };
	char *path = NULL, *interpreter = NULL;
	char why[128];
	int err;
	if (strchr(program, '/') == NULL) {
		path = closure_find_program(program, exec_path);
		if (path == NULL) {
			closure_set_error(closure, "%s", strerror(ENOENT));
			return -ENOENT;
		}
		main_object.source = CLOSURE_FROM_PATH;
	} else if ((path = strdup(program)) == NULL) {
		goto out_of_memory;
	}
	if ((main_object.name = strdup(program)) == NULL)
		goto out_of_memory;
	err = closure_object_read(&main_object, path, &interpreter, why, sizeof(why));
	if (err < 0) {
		closure_set_error(closure, "%s", why);
		free(path);
		closure_object_clear(&main_object);
		return err;
	}
	/* The program's $ORIGIN is that of the file the kernel ran: links resolved (ld.so reads
	 * /proc/self/exe). */
	char *real = realpath(path, NULL);
	main_object.origin = closure_origin_of(real != NULL ? real : path);
	free(real);
	free(path);
	path = NULL;
	if (main_object.origin == NULL)
		goto out_of_memory;
	ssize_t index = closure_push(closure, &main_object);
	if (index < 0) {
		closure_object_clear(&main_object);
		free(interpreter);
		return (int)index;
	}
	if (interpreter != NULL) {
		struct closure_object *interp = &walk->interpreter;
		*interp = (struct closure_object){ .source = CLOSURE_FROM_INTERPRETER,
						   .loader = CLOSURE_NO_LOADER };
		walk->has_interpreter = true;
		interp->name = interpreter;
		err = closure_object_read(interp, interpreter, NULL, why, sizeof(why));
		if (err == -ENOMEM)
			return err;
		if (err < 0) {
			free(interp->path);
			interp->path = NULL; /* the kernel could not start the program */
			interp->source = CLOSURE_NOT_FOUND;
		}
	}
	return 0;
out_of_memory:
	free(path);
	closure_object_clear(&main_object);
	closure_set_error(closure, "%s", strerror(ENOMEM));
	return -ENOMEM;
}

int closure_build(struct closure *closure, const char *program,
		  const struct closure_options *options)
{
	memset(closure, 0, sizeof(*closure));
	if (elf_version(EV_CURRENT) == EV_NONE) {
		closure_set_error(closure, "libelf: %s", elf_errmsg(-1));
		return -ENOSYS;
	}
	const char *platform = (const char *)getauxval(AT_PLATFORM);
	struct closure_walk walk = {
		.closure = closure,
		.ld_library_path = options ? options->ld_library_path : NULL,
		.cache_path = options && options->cache_path ? options->cache_path
							     : CLOSURE_DEFAULT_CACHE,
		.platform = platform != NULL ? platform : "x86_64",
	};
	const char *exec_path = options && options->exec_path ? options->exec_path
							      : CLOSURE_DEFAULT_EXEC_PATH;
	int err = closure_add_program(&walk, program, exec_path);
	/* Breadth first: every DT_NEEDED of an object before those of the next (elf/dl-deps.c). */
	for (size_t i = 0; err == 0 && i < closure->count; i++) {
		for (size_t j = 0; err == 0 && j < closure->objects[i].nneeded; j++)
			err = closure_add_needed(&walk, i, closure->objects[i].needed[j]);
	}
	if (err == 0)
		err = closure_place_interpreter(&walk);
	if (err == -E2BIG)
		closure_set_error(closure, "more than %d objects in the closure", CLOSURE_MAX_OBJECTS);
	else if (err < 0 && closure->error[0] == '\0')
		closure_set_error(closure, "%s", strerror(-err));
	if (walk.has_interpreter && !walk.interpreter_placed)
		closure_object_clear(&walk.interpreter);
	if (walk.cache_ok)
		ldcache_close(&walk.cache);
	return err;
}
