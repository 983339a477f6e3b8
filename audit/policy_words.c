/* Parses the words of a `route`: CALLER, PROTO, ENDPOINT, TRANSPORT and OPTION=VALUE. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "policy_private.h"

bool policy_parse_caller(struct policy_parser *p, const struct policy_token *t,
			 struct vi_caller *caller)
{
	*caller = (struct vi_caller){ .pos = { p->file, p->line, t->col } };
	if (policy_token_is(t, "*")) {
		caller->kind = VI_CALLER_ANY;
		return true;
	}
	if (policy_token_is(t, "main")) {
		caller->kind = VI_CALLER_MAIN;
		return true;
	}
	if (t->text[0] == '/') {
		caller->kind = VI_CALLER_PATH_GLOB;
		if (!policy_check_glob(p, t, "path glob"))
			return false;
	} else {
		caller->kind = VI_CALLER_SONAME_GLOB;
		const char *slash = memchr(t->text, '/', t->len);
		if (slash != NULL)
			return policy_error(p, policy_col(t, slash),
					    "CALLER '%s' has a '/' but does not start with one "
					    "(a path glob is absolute; a soname glob has no '/')",
					    QUOTE_TOKEN(t));
		if (!policy_check_glob(p, t, "soname glob"))
			return false;
	}
	caller->pattern = policy_strndup(p->owner, t->text, t->len);
	return caller->pattern != NULL;
}

bool policy_parse_proto(struct policy_parser *p, const struct policy_token *t,
			enum vi_proto *proto)
{
	static const enum vi_proto all[] = { VI_PROTO_ANY, VI_PROTO_TCP, VI_PROTO_TCP4,
					     VI_PROTO_TCP6, VI_PROTO_UDP };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (policy_token_is(t, vi_proto_name(all[i]))) {
			*proto = all[i];
			return true;
		}
	}
	return policy_error(p, t->col, "unknown protocol '%s' (expected tcp, tcp4, tcp6, udp or *)",
			    QUOTE_TOKEN(t));
}

bool policy_parse_transport(struct policy_parser *p, const struct policy_token *t,
			    enum vi_transport *transport)
{
	static const enum vi_transport all[] = { VI_TRANSPORT_SHM, VI_TRANSPORT_VERBS,
						 VI_TRANSPORT_AUTO, VI_TRANSPORT_TCP,
						 VI_TRANSPORT_KERNEL };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (policy_token_is(t, vi_transport_name(all[i]))) {
			*transport = all[i];
			return true;
		}
	}
	return policy_error(p, t->col,
			    "unknown transport '%s' (expected shm, verbs, auto, tcp or kernel)",
			    QUOTE_TOKEN(t));
}

/* Dotted-quad IPv4 in [s, end): four decimal numbers 0..255. */
static bool policy_parse_ipv4(const char *s, const char *end, uint8_t out[4])
{
	for (int i = 0; i < 4; i++) {
		uint64_t v;
		size_t digits = policy_read_number(&s, end, &v);
		if (digits == 0 || digits > 3 || v > 255)
			return false;
		out[i] = (uint8_t)v;
		if (i < 3) {
			if (s == end || *s != '.')
				return false;
			s++;
		}
	}
	return s == end;
}

static int policy_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* IPv6 text form (RFC 4291 2.2, with `::` and a dotted IPv4 tail) in [s, end). */
static bool policy_parse_ipv6(const char *s, const char *end, uint8_t out[16])
{
	uint16_t words[8] = { 0 };
	int n = 0;
	int gap = -1;

	if (s < end && *s == ':') {
		if (end - s < 2 || s[1] != ':')
			return false;
		gap = 0;
		s += 2;
	}
	while (s < end) {
		const char *colon = memchr(s, ':', (size_t)(end - s));
		const char *group_end = colon ? colon : end;
		if (memchr(s, '.', (size_t)(group_end - s)) != NULL) {
			/* A dotted IPv4 tail takes the last two words. */
			uint8_t v4[4];
			if (colon != NULL || n > 6 || !policy_parse_ipv4(s, end, v4))
				return false;
			words[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
			words[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
			s = end;
			break;
		}
		if (n == 8 || group_end == s || group_end - s > 4)
			return false;
		unsigned w = 0;
		for (; s < group_end; s++) {
			int h = policy_hex_value(*s);
			if (h < 0)
				return false;
			w = w << 4 | (unsigned)h;
		}
		words[n++] = (uint16_t)w;
		if (s == end)
			break;
		s++; /* the ':' */
		if (s < end && *s == ':') {
			if (gap >= 0)
				return false;
			gap = n;
			s++;
		} else if (s == end) {
			return false;
		}
	}
	if (gap < 0 ? n != 8 : n > 7)
		return false;
	if (gap >= 0) {
		int tail = n - gap;
		memmove(words + 8 - tail, words + gap, (size_t)tail * sizeof(words[0]));
		for (int i = gap; i < 8 - tail; i++)
			words[i] = 0;
	}
	for (int i = 0; i < 8; i++) {
		out[2 * i] = (uint8_t)(words[i] >> 8);
		out[2 * i + 1] = (uint8_t)words[i];
	}
	return true;
}

/* PORTS in [s, end): `*`, N or A-B. */
static bool policy_parse_ports(struct policy_parser *p, const struct policy_token *t,
			       const char *s, const char *end, struct vi_endpoint *ep)
{
	if (s == end)
		return policy_error(p, policy_col(t, s - 1), "missing port after ':'");
	if (policy_span_is(s, end, "*"))
		return true;

	const char *lo_text = s;
	uint64_t lo, hi;
	size_t digits = policy_read_number(&s, end, &lo);
	const char *lo_end = s;
	if (digits == 0 || (s < end && *s != '-'))
		return policy_error(p, policy_col(t, lo_text),
				    "bad port '%s' (expected a port, a range A-B, or *)",
				    QUOTE(lo_text, (size_t)(end - lo_text)));
	if (lo > 65535)
		return policy_error(p, policy_col(t, lo_text), "port %s out of range (0-65535)",
				    QUOTE(lo_text, (size_t)(lo_end - lo_text)));
	hi = lo;
	if (s < end) {
		s++; /* the '-' */
		const char *hi_text = s;
		digits = policy_read_number(&s, end, &hi);
		if (digits == 0 || s != end)
			return policy_error(p, policy_col(t, hi_text),
					    "bad port range '%s' (expected A-B)",
					    QUOTE(lo_text, (size_t)(end - lo_text)));
		if (hi > 65535)
			return policy_error(p, policy_col(t, hi_text),
					    "port %s out of range (0-65535)",
					    QUOTE(hi_text, (size_t)(end - hi_text)));
		if (hi < lo)
			return policy_error(p, policy_col(t, lo_text),
					    "port range %s is reversed (the lower port comes first)",
					    QUOTE(lo_text, (size_t)(end - lo_text)));
	}
	ep->port_lo = (uint16_t)lo;
	ep->port_hi = (uint16_t)hi;
	return true;
}

bool policy_parse_endpoint(struct policy_parser *p, const struct policy_token *t,
			   struct vi_endpoint *ep)
{
	const char *s = t->text;
	const char *end = t->text + t->len;
	unsigned max_prefix = 0;

	*ep = (struct vi_endpoint){ .port_lo = 0, .port_hi = 65535 };
	if (*s == '[') {
		const char *close = memchr(s, ']', t->len);
		if (close == NULL)
			return policy_error(p, t->col, "missing ']' after the IPv6 address in '%s'",
					    QUOTE_TOKEN(t));
		const char *slash = memchr(s, '/', (size_t)(close - s));
		if (slash != NULL)
			return policy_error(p, policy_col(t, slash),
					    "the prefix goes after the bracket: write [%s]/%s",
					    QUOTE(s + 1, (size_t)(slash - s - 1)),
					    QUOTE(slash + 1, (size_t)(close - slash - 1)));
		if (!policy_parse_ipv6(s + 1, close, ep->addr))
			return policy_error(p, policy_col(t, s + 1), "bad IPv6 address '%s'",
					    QUOTE(s + 1, (size_t)(close - s - 1)));
		ep->family = AF_INET6;
		ep->prefix = max_prefix = 128;
		s = close + 1;
	} else if (*s == '*') {
		ep->any_host = true;
		s++;
	} else {
		const char *host = s;
		while (s < end && *s != '/' && *s != ':')
			s++;
		if (!policy_parse_ipv4(host, s, ep->addr)) {
			size_t colons = 0;
			bool dotted = host != s;
			for (const char *c = host; c < end; c++)
				colons += *c == ':';
			for (const char *c = host; c < s; c++)
				dotted = dotted && (policy_is_digit(*c) || *c == '.');
			if (colons >= 2)
				return policy_error(p, t->col,
						    "an IPv6 address goes in brackets, as in "
						    "[::1]:6379 or [fe80::]/10");
			if (dotted)
				return policy_error(p, t->col, "bad IPv4 address '%s'",
						    QUOTE(host, (size_t)(s - host)));
			return policy_error(p, t->col,
					    "bad host '%s' (expected an IPv4 address, "
					    "[IPv6 address] or *)",
					    QUOTE(host, (size_t)(s - host)));
		}
		ep->family = AF_INET;
		ep->prefix = max_prefix = 32;
	}

	if (s < end && *s == '/') {
		const char *slash = s++;
		if (ep->any_host)
			return policy_error(p, policy_col(t, slash),
					    "a prefix needs an address ('*' is every host)");
		uint64_t prefix;
		const char *digits_text = s;
		size_t digits = policy_read_number(&s, end, &prefix);
		if (digits == 0)
			return policy_error(p, policy_col(t, slash), "missing prefix length after '/'");
		if (s < end && *s != ':')
			return policy_error(p, policy_col(t, slash), "bad prefix '%s'",
					    QUOTE(slash, (size_t)(end - slash)));
		if (prefix > max_prefix)
			return policy_error(p, policy_col(t, slash), "prefix /%s too long for %s",
					    QUOTE(digits_text, (size_t)(s - digits_text)),
					    max_prefix == 32 ? "IPv4" : "IPv6");
		ep->prefix = (unsigned)prefix;
	}
	if (s < end && *s == ':')
		return policy_parse_ports(p, t, s + 1, end, ep);
	if (s < end)
		return policy_error(p, policy_col(t, s), "unexpected '%s' in ENDPOINT "
				    "(expected HOST[/PREFIX][:PORTS])",
				    QUOTE(s, (size_t)(end - s)));
	return true;
}

/* DURATION: a number with ms, s or m; a bare number is seconds. */
static bool policy_parse_duration(struct policy_parser *p, const struct policy_token *t,
				  const char *s, unsigned *ms)
{
	const char *end = t->text + t->len;
	const char *text = s;
	uint64_t v;
	uint64_t unit;

	if (policy_read_number(&s, end, &v) == 0)
		goto bad;
	if (s == end || policy_span_is(s, end, "s"))
		unit = 1000;
	else if (policy_span_is(s, end, "ms"))
		unit = 1;
	else if (policy_span_is(s, end, "m"))
		unit = 60 * 1000;
	else
		goto bad;
	if (v > POLICY_MAX_RECONNECT_MS / unit)
		return policy_error(p, policy_col(t, text),
				    "reconnect=%s is too long (at most 1440m, one day)",
				    QUOTE(text, (size_t)(end - text)));
	*ms = (unsigned)(v * unit);
	return true;
bad:
	return policy_error(p, policy_col(t, text),
			    "bad duration '%s' (expected a number with ms, s or m, as in 500ms, "
			    "30s or 2m; a bare number is seconds)",
			    QUOTE(text, (size_t)(end - text)));
}

bool policy_parse_options(struct policy_parser *p, size_t first, struct vi_route *route)
{
	bool ok = true;
	bool seen_fallback = false, seen_reconnect = false;

	for (size_t i = first; i < p->ntokens; i++) {
		const struct policy_token *t = &p->tokens[i];
		const char *eq = memchr(t->text, '=', t->len);
		if (eq == NULL) {
			ok = policy_error(p, t->col,
					  "trailing text '%s' (options are fallback=tcp|error "
					  "and reconnect=DURATION)",
					  QUOTE_TOKEN(t));
			continue;
		}
		const char *value = eq + 1;
		const char *end = t->text + t->len;
		if (policy_span_is(t->text, eq, "fallback")) {
			if (seen_fallback) {
				ok = policy_error(p, t->col, "option 'fallback' given twice");
				continue;
			}
			seen_fallback = true;
			if (policy_span_is(value, end, "tcp"))
				route->fallback = VI_FALLBACK_TCP;
			else if (policy_span_is(value, end, "error"))
				route->fallback = VI_FALLBACK_ERROR;
			else
				ok = policy_error(p, policy_col(t, value),
						  "unknown fallback '%s' (expected tcp or error)",
						  QUOTE(value, (size_t)(end - value)));
		} else if (policy_span_is(t->text, eq, "reconnect")) {
			if (seen_reconnect) {
				ok = policy_error(p, t->col, "option 'reconnect' given twice");
				continue;
			}
			seen_reconnect = true;
			if (!policy_parse_duration(p, t, value, &route->reconnect_ms))
				ok = false;
		} else {
			ok = policy_error(p, t->col,
					  "unknown option '%s' (expected fallback or reconnect)",
					  QUOTE(t->text, (size_t)(eq - t->text)));
		}
	}
	return ok;
}

