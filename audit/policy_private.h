/* Declarations shared by the policy library's own files; not public. */
#ifndef VIAUDIT_POLICY_PRIVATE_H
#define VIAUDIT_POLICY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <viaudit/policy.h>

/* ----- globs (glob.c) ----- */

/* What is wrong with a glob pattern, for the parser's messages. */
enum policy_glob_problem {
	POLICY_GLOB_OK,
	POLICY_GLOB_UNCLOSED_BRACKET, /* `[` without its `]` */
	POLICY_GLOB_TRAILING_BACKSLASH,
};

/*
 * Checks that `len` bytes at `pattern` form a glob whose every `[` is closed and that does
 * not end in a lone `\`. On a problem, *offset is where it starts.
 */
enum policy_glob_problem policy_glob_check(const char *pattern, size_t len, size_t *offset);

/* Whether an ENDPOINT is `*` or `*:*`: every host and every port. */
static inline bool policy_endpoint_is_everything(const struct vi_endpoint *ep)
{
	return ep->any_host && ep->port_lo == 0 && ep->port_hi == 65535;
}

/* ----- the policy being built (policy_parse.c) ----- */

/*
 * Memory: every string lives in a chain of blocks freed at once by vi_policy_free; the
 * arrays that grow (routes, traces, diagnostics) are separate allocations owned by the same
 * struct. An allocation that fails sets out_of_memory, and the parse then returns NULL.
 */
struct policy_block {
	struct policy_block *next;
	size_t used;
	size_t size;
	max_align_t data[];
};

/* The policy as allocated: the public part first, so a vi_policy * converts back. */
struct policy_owner {
	struct vi_policy pub;
	struct policy_block *blocks;
	struct vi_route *routes;
	size_t routes_cap;
	struct vi_trace *traces;
	size_t traces_cap;
	struct vi_diagnostic *diagnostics;
	size_t diagnostics_cap;
	bool out_of_memory;
};

/* A whitespace-separated word of one line. */
struct policy_token {
	const char *text;
	size_t len;
	unsigned col;
};

enum policy_setting_key {
	POLICY_SET_RING_SIZE,
	POLICY_SET_SPIN_US,
	POLICY_SET_STRICT,
	POLICY_SET_LOG,
	POLICY_SET_DOOR_PEERS,
	POLICY_SET_PROTOTYPES,
	POLICY_SET_COUNT,
};

struct policy_parser {
	struct policy_owner *owner;
	const char *file;      /* the policy's own copy */
	unsigned line;
	struct policy_token *tokens;
	size_t ntokens;
	size_t tokens_cap;
	const char *program;   /* the `program` glob in force */
	/* The first route matching everything for every program (program `*`), and the first
	 * one since the last `program` line; later routes they shadow are unreachable. */
	unsigned everything_line;
	unsigned scope_everything_line;
	unsigned set_line[POLICY_SET_COUNT]; /* line of the last valid `set KEY` */
};

#define POLICY_DEFAULT_RING_SIZE ((size_t)1 << 20)
#define POLICY_MIN_RING_SIZE ((uint64_t)4 << 10)
#define POLICY_MAX_RING_SIZE ((uint64_t)1 << 30)
#define POLICY_MAX_SPIN_US 1000000L
#define POLICY_MAX_RECONNECT_MS (24u * 60u * 60u * 1000u)
/* Quoted text in messages is cut after this many bytes. */
#define POLICY_QUOTE_MAX 48


/* Largest policy file vi_policy_load reads. */
#define POLICY_MAX_FILE_SIZE ((size_t)1 << 20)

/* Text of a token for a message: printable ASCII as is, other bytes as \xNN, cut when long. */
struct policy_quoted {
	char text[POLICY_QUOTE_MAX * 4 + 4];
};

#define QUOTE(s, len) (policy_quote((s), (len)).text)
#define QUOTE_TOKEN(t) QUOTE((t)->text, (t)->len)

struct policy_owner *policy_owner_new(void);
/* Publishes the arrays and returns the policy, or frees it all and returns NULL after an
 * allocation failed. */
struct vi_policy *policy_owner_finish(struct policy_owner *owner);
/* Memory that lives as long as the policy; NULL (and out_of_memory set) when none is left. */
void *policy_alloc(struct policy_owner *owner, size_t size);
char *policy_strndup(struct policy_owner *owner, const char *s, size_t len);
/* Records a diagnostic whose message lives as long as the policy (NULL: out of memory). */
void policy_add_diagnostic(struct policy_owner *owner, const char *file, unsigned line,
			   unsigned col, enum vi_severity severity, const char *message);
/* Records an error at column `col` of the current line; always returns false. */
__attribute__((format(printf, 3, 4))) bool policy_error(struct policy_parser *p, unsigned col,
							  const char *format, ...);
struct policy_quoted policy_quote(const char *s, size_t len);

/* Column of byte `s` inside token `t`. */
static inline unsigned policy_col(const struct policy_token *t, const char *s)
{
	return t->col + (unsigned)(s - t->text);
}

bool policy_token_is(const struct policy_token *t, const char *word);
bool policy_span_is(const char *s, const char *end, const char *word);
static inline bool policy_is_digit(char c)
{
	return c >= '0' && c <= '9';
}
/*
 * Reads the decimal digits at *s (before `end`), moving *s past them. The value saturates
 * at UINT64_MAX / 16 so callers can still compare it against their limits. Returns how many
 * digits there were.
 */
size_t policy_read_number(const char **s, const char *end, uint64_t *value);
/* Checks a glob token; `what` names it in messages. */
bool policy_check_glob(struct policy_parser *p, const struct policy_token *t, const char *what);

/* ----- the words of a route (policy_words.c); each reports its own errors ----- */

bool policy_parse_caller(struct policy_parser *p, const struct policy_token *t,
			 struct vi_caller *caller);
bool policy_parse_proto(struct policy_parser *p, const struct policy_token *t,
			enum vi_proto *proto);
bool policy_parse_transport(struct policy_parser *p, const struct policy_token *t,
			    enum vi_transport *transport);
bool policy_parse_endpoint(struct policy_parser *p, const struct policy_token *t,
			   struct vi_endpoint *ep);
/* OPTION=VALUE words from token `first` on. */
bool policy_parse_options(struct policy_parser *p, size_t first, struct vi_route *route);

#endif
