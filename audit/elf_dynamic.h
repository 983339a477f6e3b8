/* Reading a loaded object's dynamic section: symbols, relocations, names and its address range. */
#ifndef VI_ELF_DYNAMIC_H
#define VI_ELF_DYNAMIC_H

#include <elf.h>
#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elf_dynamic {
	ElfW(Addr) base; /* l_addr: the load bias */
	const ElfW(Sym) *symtab;
	const char *strtab;
	size_t strsz;
	const uint32_t *gnu_hash;
	const ElfW(Word) *sysv_hash;
	const ElfW(Half) *versym;
	const ElfW(Rela) *rela;
	size_t relasz;
	const ElfW(Rela) *jmprel;
	size_t pltrelsz;
	const char *soname;  /* NULL without DT_SONAME */
	const char *runpath; /* NULL without DT_RUNPATH */
	const char *rpath;   /* NULL without DT_RPATH */
	uintptr_t start, end;               /* the PT_LOAD span, [start, end); 0, 0 if unknown */
	uintptr_t relro_start, relro_end;   /* PT_GNU_RELRO span, page aligned; 0, 0 if none */
};

/*
 * Reads the dynamic section of a loaded object. `phdr`/`phnum` may be NULL/0, in which case
 * the program headers are found through the ELF header mapped at the object's first page.
 * Returns 0, or -ENOEXEC when the object has no usable symbol table.
 */
int elf_dynamic_read(const struct link_map *map, const ElfW(Phdr) *phdr, size_t phnum,
		     struct elf_dynamic *out);

/* The defined, default-version symbol `name`, or NULL. Uses DT_GNU_HASH, else DT_HASH. */
const ElfW(Sym) *elf_dynamic_lookup(const struct elf_dynamic *dyn, const char *name);

/* The name of symbol index `i`, or NULL when out of the string table. */
const char *elf_dynamic_symbol_name(const struct elf_dynamic *dyn, size_t i);

#endif
