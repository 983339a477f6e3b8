/* Reading a loaded object's dynamic section, as ld.so left it in memory. */
#include "elf_dynamic.h"

#include <errno.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

/*
 * ld.so relocates the d_ptr entries of a writable dynamic section in place (x86_64,
 * aarch64); a value below the load bias is still a link-time address.
 */
static uintptr_t dynamic_address(const struct elf_dynamic *dyn, ElfW(Addr) value)
{
	return value < dyn->base ? value + dyn->base : value;
}

static void dynamic_read_phdrs(struct elf_dynamic *dyn, const ElfW(Phdr) *phdr, size_t phnum)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < phnum; i++) {
		uintptr_t start = dyn->base + phdr[i].p_vaddr;
		uintptr_t end = start + phdr[i].p_memsz;
		if (phdr[i].p_type == PT_LOAD) {
			if (start < lo)
				lo = start;
			if (end > hi)
				hi = end;
		} else if (phdr[i].p_type == PT_GNU_RELRO) {
			dyn->relro_start = start & ~(page - 1);
			dyn->relro_end = end & ~(page - 1); /* ld.so protects whole pages only */
		}
	}
	if (hi > lo) {
		dyn->start = lo;
		dyn->end = hi;
	}
}

int elf_dynamic_read(const struct link_map *map, const ElfW(Phdr) *phdr, size_t phnum,
		     struct elf_dynamic *out)
{
	memset(out, 0, sizeof(*out));
	out->base = map->l_addr;
	ElfW(Addr) strtab = 0, soname = 0, runpath = 0, rpath = 0;
	for (const ElfW(Dyn) *d = map->l_ld; d != NULL && d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB:
			out->symtab = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_STRTAB:
			strtab = d->d_un.d_ptr;
			break;
		case DT_STRSZ:
			out->strsz = d->d_un.d_val;
			break;
		case DT_GNU_HASH:
			out->gnu_hash = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_HASH:
			out->sysv_hash = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_VERSYM:
			out->versym = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_RELA:
			out->rela = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_RELASZ:
			out->relasz = d->d_un.d_val;
			break;
		case DT_JMPREL:
			out->jmprel = (const void *)dynamic_address(out, d->d_un.d_ptr);
			break;
		case DT_PLTRELSZ:
			out->pltrelsz = d->d_un.d_val;
			break;
		case DT_SONAME:
			soname = d->d_un.d_val + 1;
			break;
		case DT_RUNPATH:
			runpath = d->d_un.d_val + 1;
			break;
		case DT_RPATH:
			rpath = d->d_un.d_val + 1;
			break;
		}
	}
	if (out->symtab == NULL || strtab == 0)
		return -ENOEXEC;
	out->strtab = (const char *)dynamic_address(out, strtab);
	/* String offsets were stored + 1 so that offset 0 still means "present". */
	if (soname != 0 && soname - 1 < out->strsz)
		out->soname = out->strtab + soname - 1;
	if (runpath != 0 && runpath - 1 < out->strsz)
		out->runpath = out->strtab + runpath - 1;
	if (rpath != 0 && rpath - 1 < out->strsz)
		out->rpath = out->strtab + rpath - 1;

	if (phdr == NULL) {
		/* A shared object's ELF header is mapped at its load bias (first p_vaddr is 0). */
		const ElfW(Ehdr) *eh = (const void *)map->l_addr;
		if (map->l_addr != 0 && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0) {
			phdr = (const void *)(map->l_addr + eh->e_phoff);
			phnum = eh->e_phnum;
		}
	}
	if (phdr != NULL)
		dynamic_read_phdrs(out, phdr, phnum);
	return 0;
}

const char *elf_dynamic_symbol_name(const struct elf_dynamic *dyn, size_t i)
{
	ElfW(Word) off = dyn->symtab[i].st_name;
	if (dyn->strsz != 0 && off >= dyn->strsz)
		return NULL;
	return dyn->strtab + off;
}

/* A symbol that a lookup by name may return: defined, a function or object, default version. */
static bool dynamic_symbol_usable(const struct elf_dynamic *dyn, size_t i, const char *name)
{
	const ElfW(Sym) *sym = &dyn->symtab[i];
	if (sym->st_shndx == SHN_UNDEF || sym->st_value == 0)
		return false;
	if (dyn->versym != NULL && (dyn->versym[i] & 0x8000) != 0)
		return false; /* a hidden, non-default version (name@VERSION, not name@@VERSION) */
	const char *s = elf_dynamic_symbol_name(dyn, i);
	return s != NULL && strcmp(s, name) == 0;
}

static uint32_t gnu_hash_of(const char *name)
{
	uint32_t h = 5381;
	for (const unsigned char *c = (const void *)name; *c != '\0'; c++)
		h = h * 33 + *c;
	return h;
}

static uint32_t sysv_hash_of(const char *name)
{
	uint32_t h = 0;
	for (const unsigned char *c = (const void *)name; *c != '\0'; c++) {
		h = (h << 4) + *c;
		uint32_t g = h & 0xf0000000u;
		if (g != 0)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

const ElfW(Sym) *elf_dynamic_lookup(const struct elf_dynamic *dyn, const char *name)
{
	if (dyn->gnu_hash != NULL) {
		const uint32_t *h = dyn->gnu_hash;
		uint32_t nbuckets = h[0], symoffset = h[1], bloom_size = h[2];
		const ElfW(Addr) *bloom = (const void *)&h[4];
		const uint32_t *buckets = (const void *)&bloom[bloom_size];
		const uint32_t *chain = &buckets[nbuckets];
		if (nbuckets == 0)
			return NULL;
		uint32_t hash = gnu_hash_of(name);
		uint32_t i = buckets[hash % nbuckets];
		if (i < symoffset)
			return NULL;
		for (;; i++) {
			uint32_t ch = chain[i - symoffset];
			if ((ch | 1) == (hash | 1) && dynamic_symbol_usable(dyn, i, name))
				return &dyn->symtab[i];
			if (ch & 1)
				return NULL;
		}
	}
	if (dyn->sysv_hash != NULL) {
		const ElfW(Word) *h = dyn->sysv_hash;
		ElfW(Word) nbucket = h[0];
		const ElfW(Word) *bucket = &h[2], *chain = &h[2 + nbucket];
		if (nbucket == 0)
			return NULL;
		for (ElfW(Word) i = bucket[sysv_hash_of(name) % nbucket]; i != STN_UNDEF; i = chain[i])
			if (dynamic_symbol_usable(dyn, i, name))
				return &dyn->symtab[i];
	}
	return NULL;
}
