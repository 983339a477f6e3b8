/* Answers routing questions from a parsed policy, inside ld.so's audit callbacks: no allocation. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy_private.h"

/* A call's address as routing compares it: both an IPv6 form and, when there is one, IPv4. */
struct policy_address {
	bool has_v4;       /* AF_INET, or AF_INET6 holding ::ffff:a.b.c.d */
	uint8_t v4[4];
	uint8_t v6[16];    /* AF_INET6 as is; AF_INET as ::ffff:a.b.c.d */
	uint16_t port;
	bool wildcard;     /* 0.0.0.0 or :: */
};

static const uint8_t policy_v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Reads an AF_INET or AF_INET6 address; false for anything else or a short length. */
static bool policy_address_read(const struct sockaddr *addr, socklen_t addrlen,
				struct policy_address *out)
{
	sa_family_t family;

	memset(out, 0, sizeof(*out));
	if (addr == NULL || addrlen < sizeof(family))
		return false;
	memcpy(&family, &addr->sa_family, sizeof(family));
	if (family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;
		memcpy(&sin, addr, sizeof(sin));
		out->has_v4 = true;
		memcpy(out->v4, &sin.sin_addr, 4);
		memcpy(out->v6, policy_v4_mapped_prefix, 12);
		memcpy(out->v6 + 12, out->v4, 4);
		out->port = ntohs(sin.sin_port);
		out->wildcard = sin.sin_addr.s_addr == htonl(INADDR_ANY);
		return true;
	}
	/* 24 bytes: the RFC 2133 sockaddr_in6 without sin6_scope_id is still an address. */
	if (family == AF_INET6 && addrlen >= offsetof(struct sockaddr_in6, sin6_addr) + 16) {
		struct sockaddr_in6 sin6;
		memset(&sin6, 0, sizeof(sin6));
		memcpy(&sin6, addr, addrlen < sizeof(sin6) ? addrlen : sizeof(sin6));
		memcpy(out->v6, &sin6.sin6_addr, 16);
		out->port = ntohs(sin6.sin6_port);
		if (memcmp(out->v6, policy_v4_mapped_prefix, 12) == 0) {
			out->has_v4 = true;
			memcpy(out->v4, out->v6 + 12, 4);
		}
		static const uint8_t any[16];
		out->wildcard = memcmp(out->v6, any, 16) == 0;
		return true;
	}
	return false;
}

/* Whether the first `prefix` bits of a and b are equal. */
static bool policy_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned bytes = prefix / 8;
	unsigned bits = prefix % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return ((a[bytes] ^ b[bytes]) & mask) == 0;
}

/* Whether a route's ENDPOINT covers `addr` (NULL: not known yet). */
static bool policy_endpoint_matches(const struct vi_endpoint *ep, const struct policy_address *addr,
				    bool is_bind)
{
	if (addr == NULL)
		return policy_endpoint_is_everything(ep);
	if (addr->port < ep->port_lo || addr->port > ep->port_hi)
		return false;
	if (ep->any_host || (is_bind && addr->wildcard))
		return true;
	if (ep->family == AF_INET)
		return addr->has_v4 && policy_prefix_equal(ep->addr, addr->v4, ep->prefix);
	return policy_prefix_equal(ep->addr, addr->v6, ep->prefix);
}

/* Whether a rule's PROTO covers a call on `proto` (tcp covers tcp4 and tcp6). */
static bool policy_proto_matches(enum vi_proto rule, enum vi_proto call)
{
	if (rule == VI_PROTO_ANY || rule == call)
		return true;
	return rule == VI_PROTO_TCP && (call == VI_PROTO_TCP4 || call == VI_PROTO_TCP6);
}

static const char *policy_basename(const char *path)
{
	const char *base = path;
	for (const char *c = path; *c != '\0'; c++) {
		if (*c == '/')
			base = c + 1;
	}
	return base;
}

const char *vi_object_display_name(const struct vi_object *object)
{
	if (object->is_main)
		return "main";
	if (object->soname != NULL && object->soname[0] != '\0')
		return object->soname;
	const char *base = object->path ? policy_basename(object->path) : "";
	return base[0] != '\0' ? base : "?";
}

bool vi_caller_matches(const struct vi_caller *caller, const struct vi_object *object)
{
	switch (caller->kind) {
	case VI_CALLER_ANY:
		return true;
	case VI_CALLER_MAIN:
		return object->is_main;
	case VI_CALLER_SONAME_GLOB: {
		/* The executable is `main`, never a soname, even when it has one (a PIE may). */
		if (object->is_main)
			return false;
		const char *name = object->soname;
		if (name == NULL || name[0] == '\0')
			name = object->path ? policy_basename(object->path) : "";
		return name[0] != '\0' && vi_glob_match(caller->pattern, name);
	}
	case VI_CALLER_PATH_GLOB:
		return object->path != NULL && object->path[0] != '\0' &&
		       vi_glob_match(caller->pattern, object->path);
	}
	return false;
}

bool vi_program_matches(const char *glob, const char *program)
{
	if (glob == NULL)
		return true;
	return vi_glob_match(glob, program ? program : "");
}

/* Whether a rule of `program` scope and `caller` applies to this object. */
static bool policy_rule_applies(const char *scope, const struct vi_caller *caller,
				const char *program, const struct vi_object *object)
{
	return vi_program_matches(scope, program) && vi_caller_matches(caller, object);
}

const struct vi_route *vi_policy_match_route(const struct vi_policy *policy, const char *program,
					     const struct vi_object *object, enum vi_proto proto,
					     const struct sockaddr *addr, socklen_t addrlen,
					     bool is_bind)
{
	struct policy_address address;
	const struct policy_address *known = NULL;

	if (policy == NULL || object == NULL)
		return NULL;
	/* An address of another family (AF_UNIX, ...) is compared as "not known": only an
	 * ENDPOINT of `*` covers it. */
	if (policy_address_read(addr, addrlen, &address))
		known = &address;
	for (size_t i = 0; i < policy->nroutes; i++) {
		const struct vi_route *r = &policy->routes[i];
		if (policy_proto_matches(r->proto, proto) &&
		    policy_endpoint_matches(&r->endpoint, known, is_bind) &&
		    policy_rule_applies(r->program, &r->caller, program, object))
			return r;
	}
	return NULL;
}

bool vi_policy_may_route(const struct vi_policy *policy, const char *program,
			 const struct vi_object *object)
{
	if (policy == NULL || object == NULL)
		return false;
	for (size_t i = 0; i < policy->nroutes; i++) {
		const struct vi_route *r = &policy->routes[i];
		if (!policy_rule_applies(r->program, &r->caller, program, object))
			continue;
		if (r->transport != VI_TRANSPORT_KERNEL)
			return true;
		if (r->proto == VI_PROTO_ANY && policy_endpoint_is_everything(&r->endpoint))
			return false;
	}
	return false;
}

const struct vi_trace *vi_policy_match_trace(const struct vi_policy *policy, const char *program,
					     const struct vi_object *object, const char *symbol)
{
	if (policy == NULL || object == NULL || symbol == NULL)
		return NULL;
	for (size_t i = 0; i < policy->ntraces; i++) {
		const struct vi_trace *t = &policy->traces[i];
		if (!policy_rule_applies(t->program, &t->caller, program, object))
			continue;
		for (size_t j = 0; j < t->nsymbols; j++) {
			if (strcmp(t->symbols[j], symbol) == 0)
				return t;
		}
	}
	return NULL;
}
