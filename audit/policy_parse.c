/* Parses policy text into a struct vi_policy, recording every error and warning with its place. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viaudit/symbols.h>

#include "policy_private.h"

static const char *const policy_setting_names[POLICY_SET_COUNT] = {
	[POLICY_SET_RING_SIZE] = "ring_size",
	[POLICY_SET_SPIN_US] = "spin_us",
	[POLICY_SET_STRICT] = "strict",
	[POLICY_SET_LOG] = "log",
	[POLICY_SET_DOOR_PEERS] = "door_peers",
	[POLICY_SET_PROTOTYPES] = "prototypes",
};

/* ----- memory ----- */

void *policy_alloc(struct policy_owner *owner, size_t size)
{
	const size_t align = sizeof(max_align_t);
	size = (size + align - 1) & ~(align - 1);
	struct policy_block *b = owner->blocks;
	if (b == NULL || b->size - b->used < size) {
		size_t want = size > 8192 ? size : 8192;
		b = malloc(sizeof(*b) + want);
		if (b == NULL) {
			owner->out_of_memory = true;
			return NULL;
		}
		b->size = want;
		b->used = 0;
		b->next = owner->blocks;
		owner->blocks = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += size;
	return p;
}

char *policy_strndup(struct policy_owner *owner, const char *s, size_t len)
{
	char *copy = policy_alloc(owner, len + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

/* Makes room for one more element of `size` bytes in *array; returns false when out of memory. */
static bool policy_grow(struct policy_owner *owner, void **array, size_t count, size_t *cap,
			size_t size)
{
	if (count < *cap)
		return true;
	size_t want = *cap ? *cap * 2 : 16;
	void *grown = realloc(*array, want * size);
	if (grown == NULL) {
		owner->out_of_memory = true;
		return false;
	}
	*array = grown;
	*cap = want;
	return true;
}

struct policy_owner *policy_owner_new(void)
{
	struct policy_owner *owner = calloc(1, sizeof(*owner));
	if (owner == NULL)
		return NULL;
	owner->pub.settings.ring_size = POLICY_DEFAULT_RING_SIZE;
	owner->pub.settings.spin_us = -1;
	return owner;
}

void vi_policy_free(struct vi_policy *policy)
{
	if (policy == NULL)
		return;
	struct policy_owner *owner = (struct policy_owner *)policy;
	while (owner->blocks != NULL) {
		struct policy_block *next = owner->blocks->next;
		free(owner->blocks);
		owner->blocks = next;
	}
	free(owner->routes);
	free(owner->traces);
	free(owner->diagnostics);
	free(owner);
}

struct vi_policy *policy_owner_finish(struct policy_owner *owner)
{
	if (owner->out_of_memory) {
		vi_policy_free(&owner->pub);
		return NULL;
	}
	owner->pub.routes = owner->routes;
	owner->pub.traces = owner->traces;
	owner->pub.diagnostics = owner->diagnostics;
	return &owner->pub;
}

/* ----- diagnostics ----- */

struct policy_quoted policy_quote(const char *s, size_t len)
{
	struct policy_quoted q;
	size_t n = 0;

	for (size_t i = 0; i < len && i < POLICY_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f) {
			q.text[n++] = (char)c;
		} else {
			static const char hex[] = "0123456789abcdef";
			q.text[n++] = '\\';
			q.text[n++] = 'x';
			q.text[n++] = hex[c >> 4];
			q.text[n++] = hex[c & 15];
		}
	}
	if (len > POLICY_QUOTE_MAX) {
		memcpy(q.text + n, "...", 3);
		n += 3;
	}
	q.text[n] = '\0';
	return q;
}

void policy_add_diagnostic(struct policy_owner *owner, const char *file, unsigned line,
			   unsigned col, enum vi_severity severity, const char *message)
{
	if (message == NULL)
		return;
	if (!policy_grow(owner, (void **)&owner->diagnostics, owner->pub.ndiagnostics,
			 &owner->diagnostics_cap, sizeof(*owner->diagnostics)))
		return;
	owner->diagnostics[owner->pub.ndiagnostics++] = (struct vi_diagnostic){
		.pos = { .file = file, .line = line, .col = col },
		.severity = severity,
		.message = message,
	};
	if (severity == VI_SEVERITY_ERROR)
		owner->pub.nerrors++;
}

__attribute__((format(printf, 4, 0))) static void
policy_report_va(struct policy_parser *p, unsigned col, enum vi_severity severity,
		 const char *format, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	int len = vsnprintf(NULL, 0, format, ap);
	char *message = NULL;
	if (len >= 0) {
		message = policy_alloc(p->owner, (size_t)len + 1);
		if (message != NULL)
			vsnprintf(message, (size_t)len + 1, format, again);
	}
	va_end(again);
	policy_add_diagnostic(p->owner, p->file, p->line, col, severity, message);
}

bool policy_error(struct policy_parser *p, unsigned col, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	policy_report_va(p, col, VI_SEVERITY_ERROR, format, ap);
	va_end(ap);
	return false;
}

__attribute__((format(printf, 3, 4))) static void
policy_warning(struct policy_parser *p, unsigned col, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	policy_report_va(p, col, VI_SEVERITY_WARNING, format, ap);
	va_end(ap);
}

/* Column just after the last token of the line, where a missing word would go. */
static unsigned policy_end_col(const struct policy_parser *p)
{
	const struct policy_token *last = &p->tokens[p->ntokens - 1];
	return last->col + (unsigned)last->len;
}

/* ----- small lexical helpers ----- */

bool policy_token_is(const struct policy_token *t, const char *word)
{
	size_t n = strlen(word);
	return t->len == n && memcmp(t->text, word, n) == 0;
}

bool policy_span_is(const char *s, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - s) == n && memcmp(s, word, n) == 0;
}

size_t policy_read_number(const char **s, const char *end, uint64_t *value)
{
	const uint64_t cap = UINT64_MAX / 16;
	size_t digits = 0;
	uint64_t v = 0;

	while (*s < end && policy_is_digit(**s)) {
		v = v > cap / 10 ? cap : v * 10 + (uint64_t)(**s - '0');
		(*s)++;
		digits++;
	}
	*value = v > cap ? cap : v;
	return digits;
}

bool policy_check_glob(struct policy_parser *p, const struct policy_token *t, const char *what)
{
	size_t offset = 0;
	switch (policy_glob_check(t->text, t->len, &offset)) {
	case POLICY_GLOB_UNCLOSED_BRACKET:
		return policy_error(p, t->col + (unsigned)offset, "unclosed '[' in %s '%s'", what,
				    QUOTE_TOKEN(t));
	case POLICY_GLOB_TRAILING_BACKSLASH:
		return policy_error(p, t->col + (unsigned)offset, "%s '%s' ends in a lone '\\'",
				    what, QUOTE_TOKEN(t));
	case POLICY_GLOB_OK:
		break;
	}
	return true;
}

/* ----- statements ----- */

/* Reports a trailing word after a statement that takes `count` tokens; returns false if any. */
static bool policy_check_trailing(struct policy_parser *p, size_t count)
{
	if (p->ntokens <= count)
		return true;
	const struct policy_token *t = &p->tokens[count];
	return policy_error(p, t->col, "trailing text '%s'", QUOTE_TOKEN(t));
}

static void policy_parse_route(struct policy_parser *p)
{
	static const char *const missing[] = { "CALLER", "PROTO", "ENDPOINT", "TRANSPORT" };
	struct vi_route route = {
		.pos = { p->file, p->line, p->tokens[0].col },
		.program = p->program,
		.fallback = VI_FALLBACK_TCP,
	};

	if (p->ntokens < 5) {
		policy_error(p, policy_end_col(p), "missing %s (route CALLER PROTO ENDPOINT "
			     "TRANSPORT [OPTION=VALUE...])", missing[p->ntokens - 1]);
		return;
	}
	/* Check every word, so one line shows all of its mistakes. */
	bool ok = policy_parse_caller(p, &p->tokens[1], &route.caller);
	ok &= policy_parse_proto(p, &p->tokens[2], &route.proto);
	ok &= policy_parse_endpoint(p, &p->tokens[3], &route.endpoint);
	ok &= policy_parse_transport(p, &p->tokens[4], &route.transport);
	ok &= policy_parse_options(p, 5, &route);
	if (!ok)
		return;

	unsigned shadow = p->everything_line ? p->everything_line : p->scope_everything_line;
	if (shadow != 0)
		policy_warning(p, route.pos.col, "unreachable: rule at %s:%u matches everything first",
			       p->file, shadow);
	if (route.caller.kind == VI_CALLER_ANY && route.proto == VI_PROTO_ANY &&
	    policy_endpoint_is_everything(&route.endpoint)) {
		if (strcmp(p->program, "*") == 0 && p->everything_line == 0)
			p->everything_line = p->line;
		if (p->scope_everything_line == 0)
			p->scope_everything_line = p->line;
	}

	struct policy_owner *owner = p->owner;
	if (!policy_grow(owner, (void **)&owner->routes, owner->pub.nroutes, &owner->routes_cap,
			 sizeof(*owner->routes)))
		return;
	owner->routes[owner->pub.nroutes++] = route;
}

static bool policy_symbol_is_known(const char *name, size_t len)
{
	VI_SYMBOL_TABLE(symbols);
	for (size_t i = 0; i < VI_SYM_COUNT; i++) {
		if (strlen(symbols[i].name) == len && memcmp(symbols[i].name, name, len) == 0)
			return true;
	}
	return false;
}

static bool policy_is_identifier(const char *s, size_t len)
{
	if (len == 0 || policy_is_digit(s[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!(policy_is_digit(c) || c == '_' || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

static void policy_parse_trace(struct policy_parser *p)
{
	static const char *const missing[] = { "CALLER", "SYMBOL list" };
	struct vi_trace trace = {
		.pos = { p->file, p->line, p->tokens[0].col },
		.program = p->program,
	};

	if (p->ntokens < 3) {
		policy_error(p, policy_end_col(p), "missing %s (trace CALLER SYMBOL[,SYMBOL...])",
			     missing[p->ntokens - 1]);
		return;
	}
	bool ok = policy_parse_caller(p, &p->tokens[1], &trace.caller);

	const struct policy_token *list = &p->tokens[2];
	const char *end = list->text + list->len;
	size_t count = 1;
	for (const char *c = list->text; c < end; c++)
		count += *c == ',';
	const char **symbols = policy_alloc(p->owner, count * sizeof(*symbols));
	struct vi_position *positions = policy_alloc(p->owner, count * sizeof(*positions));
	if (symbols == NULL || positions == NULL)
		return;

	const char *s = list->text;
	for (size_t i = 0; i < count; i++) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *name_end = comma ? comma : end;
		size_t len = (size_t)(name_end - s);
		unsigned col = policy_col(list, s);
		if (len == 0) {
			ok = policy_error(p, col, "empty symbol name in '%s'", QUOTE_TOKEN(list));
		} else if (!policy_is_identifier(s, len)) {
			ok = policy_error(p, col, "'%s' is not a symbol name", QUOTE(s, len));
		} else {
			if (!policy_symbol_is_known(s, len))
				policy_warning(p, col,
					       "symbol '%s' is not a known socket function; it needs "
					       "a prototype to be traced",
					       QUOTE(s, len));
			symbols[i] = policy_strndup(p->owner, s, len);
			positions[i] = (struct vi_position){ p->file, p->line, col };
		}
		s = name_end + 1;
	}
	if (p->ntokens > 3) {
		const struct policy_token *t = &p->tokens[3];
		ok = policy_error(p, t->col, "trailing text '%s' (separate symbols with ',' and no "
				  "spaces)", QUOTE_TOKEN(t));
	}
	if (!ok)
		return;
	trace.nsymbols = count;
	trace.symbols = symbols;
	trace.symbol_pos = positions;

	struct policy_owner *owner = p->owner;
	if (!policy_grow(owner, (void **)&owner->traces, owner->pub.ntraces, &owner->traces_cap,
			 sizeof(*owner->traces)))
		return;
	owner->traces[owner->pub.ntraces++] = trace;
}

static void policy_parse_program(struct policy_parser *p)
{
	if (p->ntokens < 2) {
		policy_error(p, policy_end_col(p), "missing GLOB (program GLOB)");
		return;
	}
	const struct policy_token *t = &p->tokens[1];
	bool ok = true;
	const char *slash = memchr(t->text, '/', t->len);
	if (slash != NULL)
		ok = policy_error(p, policy_col(t, slash),
				  "program glob '%s' has a '/' but is matched against the "
				  "program's basename",
				  QUOTE_TOKEN(t));
	else
		ok = policy_check_glob(p, t, "program glob");
	ok &= policy_check_trailing(p, 2);
	if (!ok)
		return;
	const char *glob = policy_strndup(p->owner, t->text, t->len);
	if (glob == NULL)
		return;
	p->program = glob;
	p->scope_everything_line = 0;
}

/* SIZE: a number with an optional K, M or G (binary multiples); false when malformed. */
static bool policy_read_size(const char *s, const char *end, uint64_t *size)
{
	uint64_t v;
	if (policy_read_number(&s, end, &v) == 0)
		return false;
	unsigned shift = 0;
	if (end - s == 1) {
		switch (*s) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: return false;
		}
	} else if (s != end) {
		return false;
	}
	/* Saturate, so a size far above the limit stays above it. */
	*size = v > (UINT64_MAX >> 31) ? UINT64_MAX : v << shift;
	return true;
}

static bool policy_set_ring_size(struct policy_parser *p, const struct policy_token *t)
{
	uint64_t size;
	if (!policy_read_size(t->text, t->text + t->len, &size))
		return policy_error(p, t->col,
				    "bad size '%s' (expected a number with K, M or G, as in 64K "
				    "or 1M)",
				    QUOTE_TOKEN(t));
	if (size < POLICY_MIN_RING_SIZE)
		return policy_error(p, t->col, "ring_size %s is below the minimum 4K",
				    QUOTE_TOKEN(t));
	if (size > POLICY_MAX_RING_SIZE)
		return policy_error(p, t->col, "ring_size %s is above the maximum 1G",
				    QUOTE_TOKEN(t));
	if ((size & (size - 1)) != 0)
		return policy_error(p, t->col, "ring_size %s is not a power of two",
				    QUOTE_TOKEN(t));
	p->owner->pub.settings.ring_size = (size_t)size;
	return true;
}

static bool policy_set_spin_us(struct policy_parser *p, const struct policy_token *t)
{
	if (policy_token_is(t, "auto")) {
		p->owner->pub.settings.spin_us = -1;
		return true;
	}
	const char *s = t->text;
	uint64_t v;
	if (policy_read_number(&s, t->text + t->len, &v) == 0 || s != t->text + t->len)
		return policy_error(p, t->col,
				    "bad spin_us '%s' (expected a whole number of microseconds "
				    ">= 0, or auto)",
				    QUOTE_TOKEN(t));
	if (v > (uint64_t)POLICY_MAX_SPIN_US)
		return policy_error(p, t->col, "spin_us %s is too large (at most %ld)",
				    QUOTE_TOKEN(t), POLICY_MAX_SPIN_US);
	p->owner->pub.settings.spin_us = (long)v;
	return true;
}

static bool policy_set_strict(struct policy_parser *p, const struct policy_token *t)
{
	static const char *const yes[] = { "yes", "true", "on" };
	static const char *const no[] = { "no", "false", "off" };
	for (size_t i = 0; i < 3; i++) {
		if (policy_token_is(t, yes[i])) {
			p->owner->pub.settings.strict = true;
			return true;
		}
		if (policy_token_is(t, no[i])) {
			p->owner->pub.settings.strict = false;
			return true;
		}
	}
	return policy_error(p, t->col, "bad strict '%s' (expected yes, no, true, false, on or off)",
			    QUOTE_TOKEN(t));
}

static bool policy_set_log(struct policy_parser *p, const struct policy_token *t)
{
	static const struct {
		const char *name;
		unsigned bit;
	} categories[] = {
		{ "routes", VI_LOG_ROUTES },
		{ "conns", VI_LOG_CONNS },
		{ "calls", VI_LOG_CALLS },
		{ "debug", VI_LOG_DEBUG },
		{ "trace", VI_LOG_TRACE },
	};
	const char *s = t->text;
	const char *end = t->text + t->len;
	unsigned bits = 0;
	bool ok = true;

	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *word_end = comma ? comma : end;
		size_t i;
		for (i = 0; i < sizeof(categories) / sizeof(categories[0]); i++) {
			if (policy_span_is(s, word_end, categories[i].name)) {
				bits |= categories[i].bit;
				break;
			}
		}
		if (i == sizeof(categories) / sizeof(categories[0]))
			ok = policy_error(p, policy_col(t, s),
					  "unknown log category '%s' (expected routes, conns, calls, "
					  "debug or trace)",
					  QUOTE(s, (size_t)(word_end - s)));
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	if (ok)
		p->owner->pub.settings.log = bits;
	return ok;
}

static bool policy_set_door_peers(struct policy_parser *p, const struct policy_token *t)
{
	if (policy_token_is(t, "same-uid")) {
		p->owner->pub.settings.allow_other_uids = false;
		return true;
	}
	if (policy_token_is(t, "any")) {
		p->owner->pub.settings.allow_other_uids = true;
		return true;
	}
	return policy_error(p, t->col, "bad door_peers '%s' (expected same-uid or any)",
			    QUOTE_TOKEN(t));
}

/* A prototype file for tracing: kept as written, relative to the policy's directory. */
static bool policy_set_prototypes(struct policy_parser *p, const struct policy_token *t)
{
	p->owner->pub.settings.prototypes = policy_strndup(p->owner, t->text, t->len);
	return p->owner->pub.settings.prototypes != NULL;
}

static void policy_parse_set(struct policy_parser *p)
{
	if (p->ntokens < 2) {
		policy_error(p, policy_end_col(p), "missing KEY (set KEY VALUE)");
		return;
	}
	const struct policy_token *key = &p->tokens[1];
	size_t k;
	for (k = 0; k < POLICY_SET_COUNT; k++) {
		if (policy_token_is(key, policy_setting_names[k]))
			break;
	}
	if (k == POLICY_SET_COUNT) {
		policy_error(p, key->col, "unknown setting '%s' (expected ring_size, spin_us, "
			     "strict, log, door_peers or prototypes)",
			     QUOTE_TOKEN(key));
		return;
	}
	if (p->ntokens < 3) {
		policy_error(p, policy_end_col(p), "missing VALUE for '%s'", policy_setting_names[k]);
		return;
	}
	const struct policy_token *value = &p->tokens[2];
	bool ok;
	switch ((enum policy_setting_key)k) {
	case POLICY_SET_RING_SIZE: ok = policy_set_ring_size(p, value); break;
	case POLICY_SET_SPIN_US: ok = policy_set_spin_us(p, value); break;
	case POLICY_SET_STRICT: ok = policy_set_strict(p, value); break;
	case POLICY_SET_LOG: ok = policy_set_log(p, value); break;
	case POLICY_SET_DOOR_PEERS: ok = policy_set_door_peers(p, value); break;
	case POLICY_SET_PROTOTYPES: ok = policy_set_prototypes(p, value); break;
	default: ok = false; break;
	}
	ok &= policy_check_trailing(p, 3);
	if (!ok)
		return;
	if (p->set_line[k] != 0)
		policy_warning(p, key->col, "duplicate setting '%s'; this replaces the one at %s:%u",
			       policy_setting_names[k], p->file, p->set_line[k]);
	p->set_line[k] = p->line;
}

/* ----- lines ----- */

static bool policy_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Splits one line (without its '\n') into tokens; returns false after reporting a bad byte. */
static bool policy_split_line(struct policy_parser *p, const char *s, size_t len)
{
	size_t i = 0;

	p->ntokens = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (policy_is_space((char)c)) {
			i++;
			continue;
		}
		if (c == '#')
			return true;
		if (c < 0x20 || c == 0x7f)
			return policy_error(p, (unsigned)i + 1, "invalid byte 0x%02x", c);
		size_t start = i;
		while (i < len && !policy_is_space(s[i]) && s[i] != '#' &&
		       (unsigned char)s[i] >= 0x20 && s[i] != 0x7f)
			i++;
		if (!policy_grow(p->owner, (void **)&p->tokens, p->ntokens, &p->tokens_cap,
				 sizeof(*p->tokens)))
			return false;
		p->tokens[p->ntokens++] = (struct policy_token){ s + start, i - start,
								 (unsigned)start + 1 };
	}
	return true;
}

static void policy_parse_line(struct policy_parser *p, const char *s, size_t len)
{
	if (!policy_split_line(p, s, len) || p->ntokens == 0)
		return;
	const struct policy_token *keyword = &p->tokens[0];
	if (policy_token_is(keyword, "route"))
		policy_parse_route(p);
	else if (policy_token_is(keyword, "trace"))
		policy_parse_trace(p);
	else if (policy_token_is(keyword, "program"))
		policy_parse_program(p);
	else if (policy_token_is(keyword, "set"))
		policy_parse_set(p);
	else
		policy_error(p, keyword->col,
			     "unknown keyword '%s' (expected route, trace, program or set)",
			     QUOTE_TOKEN(keyword));
}

struct vi_policy *vi_policy_parse(const char *text, size_t len, const char *file)
{
	struct policy_owner *owner = policy_owner_new();
	if (owner == NULL)
		return NULL;
	if (file == NULL)
		file = "<policy>";
	struct policy_parser p = {
		.owner = owner,
		.file = policy_strndup(owner, file, strlen(file)),
		.program = "*",
	};
	owner->pub.file = p.file;
	if (text == NULL)
		len = 0;

	size_t at = 0;
	while (at < len && !owner->out_of_memory) {
		const char *line = text + at;
		const char *newline = memchr(line, '\n', len - at);
		size_t line_len = newline ? (size_t)(newline - line) : len - at;
		if (p.line == UINT32_MAX)
			break;
		p.line++;
		policy_parse_line(&p, line, line_len);
		at += line_len + (newline != NULL);
	}
	free(p.tokens);
	return policy_owner_finish(owner);
}

