/* Glob matching for policy patterns, safe to call from ld.so's audit callbacks. */
#include <stdbool.h>
#include <stddef.h>

#include "policy_private.h"

/*
 * The rules are fnmatch(3) without flags: `*` matches any run of bytes, '/' and a leading
 * '.' included; `?` matches one byte; `[...]` matches one byte of a set, with ranges `a-z`,
 * `!` or `^` first to negate, and `]` first to stand for itself; `\` makes the next byte
 * literal. A `[` without its `]` stands for itself; a pattern ending in a lone `\` matches
 * nothing (the parser refuses both in policy files). Bytes are compared as they are: no
 * locale, no case folding, no character classes.
 *
 * This runs inside la_objopen and la_symbind64, so it allocates nothing, calls nothing and
 * keeps no state. Because `*` may match '/', the last `*` seen is the only backtracking point
 * that matters (a later `*` can absorb whatever an earlier one would have), so the match
 * is one pass with one saved position: O(len(pattern) * len(text)) at worst, never
 * exponential.
 */

/*
 * Matches byte `c` against the bracket expression starting just after `[` at `p`. Returns
 * the position after the closing `]` and sets *matched, or NULL when the bracket is not
 * closed (then `[` is an ordinary byte).
 */
static const unsigned char *glob_match_bracket(const unsigned char *p, unsigned char c,
					       bool *matched)
{
	bool negate = false;
	bool found = false;

	if (*p == '!' || *p == '^') {
		negate = true;
		p++;
	}
	const unsigned char *first = p;
	while (*p != '\0') {
		if (*p == ']' && p != first)
			break;
		unsigned char lo = *p;
		if (lo == '\\' && p[1] != '\0') {
			p++;
			lo = *p;
		}
		p++;
		unsigned char hi = lo;
		if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
			p++;
			hi = *p;
			if (hi == '\\' && p[1] != '\0') {
				p++;
				hi = *p;
			}
			p++;
		}
		if (c >= lo && c <= hi)
			found = true;
	}
	if (*p != ']')
		return NULL;
	*matched = found != negate;
	return p + 1;
}

/*
 * Tries to match one pattern element at `*pp` against byte `c` (not `*`). On success moves
 * *pp past the element and returns true.
 */
static bool glob_match_one(const unsigned char **pp, unsigned char c)
{
	const unsigned char *p = *pp;

	switch (*p) {
	case '?':
		*pp = p + 1;
		return true;
	case '[': {
		bool matched = false;
		const unsigned char *next = glob_match_bracket(p + 1, c, &matched);
		if (next == NULL) {
			/* An unclosed `[` is a literal. */
			if (c != '[')
				return false;
			*pp = p + 1;
			return true;
		}
		if (!matched)
			return false;
		*pp = next;
		return true;
	}
	case '\\':
		if (p[1] != '\0') {
			if (p[1] != c)
				return false;
			*pp = p + 2;
			return true;
		}
		/* A lone backslash at the end matches nothing, as in fnmatch. */
		return false;
	default:
		if (*p != c)
			return false;
		*pp = p + 1;
		return true;
	}
}

bool vi_glob_match(const char *pattern, const char *text)
{
	const unsigned char *p = (const unsigned char *)pattern;
	const unsigned char *t = (const unsigned char *)text;
	const unsigned char *star_p = NULL; /* pattern just after the last `*` */
	const unsigned char *star_t = NULL; /* text where that `*` resumes matching */

	if (p == NULL || t == NULL)
		return false;
	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (*p == '\0')
				return true;
			star_p = p;
			star_t = t;
			continue;
		}
		if (*t == '\0')
			return *p == '\0';
		if (*p != '\0' && glob_match_one(&p, *t)) {
			t++;
			continue;
		}
		/* Mismatch: let the last `*` swallow one more byte, or fail. */
		if (star_p == NULL)
			return false;
		p = star_p;
		t = ++star_t;
	}
}

enum policy_glob_problem policy_glob_check(const char *pattern, size_t len, size_t *offset)
{
	size_t i = 0;

	while (i < len) {
		if (pattern[i] == '\\') {
			if (i + 1 == len) {
				*offset = i;
				return POLICY_GLOB_TRAILING_BACKSLASH;
			}
			i += 2;
			continue;
		}
		if (pattern[i] != '[') {
			i++;
			continue;
		}
		/* Find the `]` the matcher would close this bracket with. */
		size_t open = i++;
		if (i < len && (pattern[i] == '!' || pattern[i] == '^'))
			i++;
		size_t first = i;
		while (i < len && !(pattern[i] == ']' && i != first))
			i += (pattern[i] == '\\' && i + 1 < len) ? 2 : 1;
		if (i >= len) {
			*offset = open;
			return POLICY_GLOB_UNCLOSED_BRACKET;
		}
		i++;
	}
	return POLICY_GLOB_OK;
}
