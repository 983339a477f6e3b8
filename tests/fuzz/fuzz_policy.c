/* Fuzzes the policy parser and matcher: libFuzzer entry point and a deterministic driver. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viaudit/policy.h>

#define FUZZ_NAME "fuzz_policy"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_diagnostics(const struct vi_policy *p)
{
	char buf[256];
	size_t errors = 0;
	unsigned last_line = 0;

	for (size_t i = 0; i < p->ndiagnostics; i++) {
		const struct vi_diagnostic *d = &p->diagnostics[i];
		fuzz_check(d->message != NULL && d->pos.file != NULL);
		fuzz_check(d->pos.line >= 1 && d->pos.col >= 1);
		fuzz_check(d->pos.line >= last_line);
		last_line = d->pos.line;
		errors += d->severity == VI_SEVERITY_ERROR;
		size_t len = vi_diagnostic_format(d, buf, sizeof(buf));
		fuzz_check(len > 0 && len < sizeof(buf));
		fuzz_check(strlen(buf) == len && buf[len - 1] == '\n');
		/* Messages never carry raw control bytes: they go to a terminal. */
		for (const char *c = d->message; *c != '\0'; c++)
			fuzz_check((unsigned char)*c >= 0x20 && *c != 0x7f);
	}
	fuzz_check(errors == p->nerrors);
}

static void fuzz_check_rules(const struct vi_policy *p)
{
	for (size_t i = 0; i < p->nroutes; i++) {
		const struct vi_route *r = &p->routes[i];
		const struct vi_endpoint *ep = &r->endpoint;
		fuzz_check(r->program != NULL);
		fuzz_check(r->transport <= VI_TRANSPORT_AUTO && r->proto <= VI_PROTO_UDP);
		fuzz_check(ep->port_lo <= ep->port_hi);
		if (!ep->any_host)
			fuzz_check((ep->family == AF_INET && ep->prefix <= 32) ||
				   (ep->family == AF_INET6 && ep->prefix <= 128));
		fuzz_check((r->caller.pattern != NULL) ==
			   (r->caller.kind == VI_CALLER_SONAME_GLOB ||
			    r->caller.kind == VI_CALLER_PATH_GLOB));
		fuzz_check(r->reconnect_ms <= 24u * 60 * 60 * 1000);
	}
	for (size_t i = 0; i < p->ntraces; i++) {
		const struct vi_trace *t = &p->traces[i];
		fuzz_check(t->nsymbols >= 1);
		for (size_t j = 0; j < t->nsymbols; j++)
			fuzz_check(t->symbols[j] != NULL && t->symbols[j][0] != '\0');
	}
	const struct vi_settings *s = &p->settings;
	fuzz_check(s->ring_size >= 4096 && s->ring_size <= (1u << 30));
	fuzz_check((s->ring_size & (s->ring_size - 1)) == 0);
	fuzz_check(s->spin_us >= -1 && s->spin_us <= 1000000);
}

static void fuzz_match(const struct vi_policy *p)
{
	static const struct vi_object objects[] = {
		{ .is_main = true, .path = "/usr/bin/redis-server" },
		{ .path = "/usr/lib/x86_64-linux-gnu/libpq.so.5.15", .soname = "libpq.so.5" },
		{ .path = "/opt/app/lib/plugins/x.so" },
		{ .path = "" },
	};
	static const char *const programs[] = { "redis-server", "psql", "" };
	static const enum vi_proto protos[] = { VI_PROTO_TCP4, VI_PROTO_TCP6, VI_PROTO_UDP };
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(6379) };
	struct sockaddr_in any4 = { .sin_family = AF_INET, .sin_port = htons(5432) };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
	inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
	inet_pton(AF_INET6, "fe80::1", &v6.sin6_addr);
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &mapped.sin6_addr);
	const struct {
		const struct sockaddr *sa;
		socklen_t len;
	} addresses[] = {
		{ NULL, 0 },
		{ (const struct sockaddr *)&v4, sizeof(v4) },
		{ (const struct sockaddr *)&any4, sizeof(any4) },
		{ (const struct sockaddr *)&v6, sizeof(v6) },
		{ (const struct sockaddr *)&mapped, sizeof(mapped) },
	};

	for (size_t o = 0; o < sizeof(objects) / sizeof(objects[0]); o++) {
		(void)vi_object_display_name(&objects[o]);
		for (size_t g = 0; g < sizeof(programs) / sizeof(programs[0]); g++) {
			bool may = vi_policy_may_route(p, programs[g], &objects[o]);
			for (size_t k = 0; k < sizeof(protos) / sizeof(protos[0]); k++) {
				for (size_t a = 0; a < sizeof(addresses) / sizeof(addresses[0]); a++) {
					for (int bind = 0; bind < 2; bind++) {
						const struct vi_route *r = vi_policy_match_route(
							p, programs[g], &objects[o], protos[k],
							addresses[a].sa, addresses[a].len, bind);
						if (r == NULL)
							continue;
						fuzz_check(r >= p->routes && r < p->routes + p->nroutes);
						/* A route that is not kernel means may_route said so. */
						if (r->transport != VI_TRANSPORT_KERNEL)
							fuzz_check(may);
					}
				}
			}
			for (size_t t = 0; t < p->ntraces; t++) {
				for (size_t j = 0; j < p->traces[t].nsymbols; j++)
					(void)vi_policy_match_trace(p, programs[g], &objects[o],
								    p->traces[t].symbols[j]);
			}
		}
	}
	/* Every pattern the policy kept, against texts that stress the matcher. */
	for (size_t i = 0; i < p->nroutes; i++) {
		const char *pattern = p->routes[i].caller.pattern;
		if (pattern == NULL)
			continue;
		(void)vi_glob_match(pattern, pattern);
		(void)vi_glob_match(pattern, "/a/b/[c]/d*e?\\f");
		(void)vi_glob_match(p->routes[i].program, pattern);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vi_policy *p = vi_policy_parse((const char *)data, size, "fuzz.policy");
	if (p == NULL)
		return 0; /* out of memory, the only reason for NULL */
	fuzz_check(p->nerrors <= p->ndiagnostics);
	fuzz_check(strcmp(p->file, "fuzz.policy") == 0);
	fuzz_check_diagnostics(p);
	fuzz_check_rules(p);
	fuzz_match(p);
	vi_policy_free(p);
	return 0;
}

#ifndef VI_FUZZ_LIBFUZZER

/*
 * The standalone driver: `fuzz_policy [-n ITERATIONS] [-s SEED] FILE...` reads the seed
 * policies, checks they parse cleanly, then feeds ITERATIONS deterministic mutations of
 * them (bit flips, byte changes, insertions of bytes and words of the language, deletions,
 * line duplication, splices of two seeds) to LLVMFuzzerTestOneInput. A crash, a sanitizer
 * report or a failed check fails the test; the same SEED gives the same inputs.
 */

struct fuzz_seed {
	char *text;
	size_t len;
};

static const char fuzz_bytes[] = " \t\n\r#*:/[]!?,=-.\\0123456789abcdefxX\xff\x80";
static const char *const fuzz_words[] = {
	"route ", "trace ", "program ", "set ", "main", "*", "* * * kernel", "tcp", "tcp6",
	"udp", "shm", "verbs", "auto", "kernel", "[::1]", "[::ffff:1.2.3.4]/104", "[fe80::/10]",
	"/128", "/0", "/33", ":65535", ":65536", ":0-65535", "-", "99999999999999999999",
	"fallback=", "reconnect=", "500ms", "1440m", "ring_size ", "spin_us ", "strict ",
	"log ", "door_peers ", "routes,conns,calls,debug", "1G", "4K", "3M", "[!a-z]",
	"\\", "[", "]", "connect,send,recv", ",,", "\r\n", "\n", "#", "0.0.0.0/0",
	"255.255.255.255", "::", "same-uid", "any", "lib*.so.*", "/opt/*/x.so",
};

static size_t fuzz_insert(char *buf, size_t len, size_t cap, size_t at, const char *s, size_t n)
{
	if (len + n > cap)
		n = cap - len;
	memmove(buf + at + n, buf + at, len - at);
	memcpy(buf + at, s, n);
	return len + n;
}

/* Applies one random mutation to buf (len bytes, room for cap); returns the new length. */
static size_t fuzz_mutate(char *buf, size_t len, size_t cap, const struct fuzz_seed *seeds,
			  size_t nseeds)
{
	size_t at = fuzz_below(len + 1);

	switch (fuzz_below(8)) {
	case 0: /* flip a bit */
		if (len > 0)
			buf[fuzz_below(len)] ^= (char)(1u << fuzz_below(8));
		return len;
	case 1: /* change a byte */
		if (len > 0)
			buf[fuzz_below(len)] = fuzz_bytes[fuzz_below(sizeof(fuzz_bytes) - 1)];
		return len;
	case 2: { /* insert a byte, NUL included */
		char c = fuzz_below(4) == 0 ? '\0' : fuzz_bytes[fuzz_below(sizeof(fuzz_bytes) - 1)];
		return fuzz_insert(buf, len, cap, at, &c, 1);
	}
	case 3: { /* insert a word of the language */
		const char *w = fuzz_words[fuzz_below(sizeof(fuzz_words) / sizeof(fuzz_words[0]))];
		return fuzz_insert(buf, len, cap, at, w, strlen(w));
	}
	case 4: { /* delete a run */
		size_t n = fuzz_below(len - at + 1);
		if (n > 16 && fuzz_below(4) != 0)
			n = fuzz_below(16);
		memmove(buf + at, buf + at + n, len - at - n);
		return len - n;
	}
	case 5: { /* duplicate a run (often a line) */
		size_t n = fuzz_below(len - at + 1);
		if (n > 80)
			n = 80;
		char copy[80];
		memcpy(copy, buf + at, n);
		return fuzz_insert(buf, len, cap, fuzz_below(len + 1), copy, n);
	}
	case 6: { /* splice: keep our head, take another seed's tail */
		const struct fuzz_seed *other = &seeds[fuzz_below(nseeds)];
		size_t from = fuzz_below(other->len + 1);
		size_t n = other->len - from;
		if (at + n > cap)
			n = cap - at;
		memcpy(buf + at, other->text + from, n);
		return at + n;
	}
	default: /* swap two bytes */
		if (len > 1) {
			size_t i = fuzz_below(len), j = fuzz_below(len);
			char c = buf[i];
			buf[i] = buf[j];
			buf[j] = c;
		}
		return len;
	}
}

static bool fuzz_read_seed(const char *path, struct fuzz_seed *seed)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "fuzz_policy: %s: %s\n", path, strerror(errno));
		return false;
	}
	size_t cap = 4096;
	seed->text = malloc(cap);
	seed->len = 0;
	size_t n;
	while (seed->text != NULL && (n = fread(seed->text + seed->len, 1, cap - seed->len, f)) > 0) {
		seed->len += n;
		if (seed->len == cap) {
			char *grown = realloc(seed->text, cap * 2);
			if (grown == NULL) {
				free(seed->text);
				seed->text = NULL;
				break;
			}
			seed->text = grown;
			cap *= 2;
		}
	}
	fclose(f);
	return seed->text != NULL;
}

/* Inputs a mutation rarely reaches: very long lines, many lines, only separators. */
static void fuzz_run_large_inputs(void)
{
	size_t size = 300000;
	char *buf = malloc(size);
	if (buf == NULL)
		abort();
	memset(buf, ' ', size);
	memcpy(buf + size - 24, "route main tcp *:1 shmm\n", 24);
	LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
	for (size_t i = 0; i < size; i++)
		buf[i] = "route * * * kernel\n"[i % 19];
	LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
	memset(buf, '\n', size);
	LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
	memset(buf, '\0', size);
	LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
	memset(buf, ',', size);
	memcpy(buf, "trace * ", 8);
	LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
	free(buf);
}

int main(int argc, char **argv)
{
	long iterations = 20000;
	uint64_t seed_value = 1;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			seed_value = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: fuzz_policy [-n ITERATIONS] [-s SEED] FILE...\n");
			return 2;
		}
	}
	size_t nseeds = (size_t)(argc - i);
	if (nseeds == 0) {
		fprintf(stderr, "usage: fuzz_policy [-n ITERATIONS] [-s SEED] FILE...\n");
		return 2;
	}
	struct fuzz_seed *seeds = calloc(nseeds, sizeof(*seeds));
	if (seeds == NULL)
		return 1;
	for (size_t s = 0; s < nseeds; s++) {
		if (!fuzz_read_seed(argv[i + (int)s], &seeds[s]))
			return 1;
		/* The seeds are good files: a mutation should start from a clean parse. */
		struct vi_policy *p = vi_policy_parse(seeds[s].text, seeds[s].len, "seed");
		if (p == NULL || p->nerrors != 0) {
			fprintf(stderr, "fuzz_policy: seed %s has errors\n", argv[i + (int)s]);
			if (p != NULL)
				vi_policy_print_diagnostics(p, 2);
			return 1;
		}
		vi_policy_free(p);
	}

	fuzz_seed(seed_value);
	fuzz_run_large_inputs();

	size_t cap = 64 * 1024;
	char *buf = malloc(cap);
	if (buf == NULL)
		return 1;
	long with_errors = 0;
	for (long n = 0; n < iterations; n++) {
		const struct fuzz_seed *s = &seeds[fuzz_below(nseeds)];
		size_t len = s->len < cap ? s->len : cap;
		memcpy(buf, s->text, len);
		size_t mutations = 1 + fuzz_below(fuzz_below(4) == 0 ? 32 : 4);
		for (size_t m = 0; m < mutations; m++)
			len = fuzz_mutate(buf, len, cap, seeds, nseeds);
		/* Count inputs that still have errors, to show the mutations reach the checks. */
		struct vi_policy *p = vi_policy_parse(buf, len, "fuzz.policy");
		with_errors += p != NULL && p->nerrors > 0;
		vi_policy_free(p);
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	}
	printf("fuzz_policy: %ld mutated inputs from %zu seeds (seed %llu), %ld with errors, "
	       "no check failed\n",
	       iterations, nseeds, (unsigned long long)seed_value, with_errors);
	free(buf);
	for (size_t s = 0; s < nseeds; s++)
		free(seeds[s].text);
	free(seeds);
	return 0;
}

#endif
