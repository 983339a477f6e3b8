/* Formats a traced call: decoded arguments (addresses, flag names, buffer heads), result and errno. */
#include "trace_format.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

/* ----- an output buffer that cuts instead of overflowing ----- */

struct trace_out {
	char *buf;
	size_t size; /* usable bytes, room for "...\n" and the NUL kept aside */
	size_t len;
	bool cut;
};

static void out_bytes(struct trace_out *o, const char *s, size_t n)
{
	if (o->cut)
		return;
	if (n > o->size - o->len) {
		n = o->size - o->len;
		o->cut = true;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void out_str(struct trace_out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void out_fmt(struct trace_out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/*
 * Numbers without printf: a traced call formats a dozen of them, and vsnprintf costs
 * hundreds of instructions each.
 */
static void out_unsigned(struct trace_out *o, uint64_t v)
{
	char digits[24];
	size_t n = sizeof(digits);
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	out_bytes(o, digits + n, sizeof(digits) - n);
}

static void out_signed(struct trace_out *o, int64_t v)
{
	if (v < 0) {
		out_bytes(o, "-", 1);
		out_unsigned(o, (uint64_t)0 - (uint64_t)v);
	} else {
		out_unsigned(o, (uint64_t)v);
	}
}

static void out_hex(struct trace_out *o, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char digits[20];
	size_t n = sizeof(digits);
	do {
		digits[--n] = hex[v & 15];
		v >>= 4;
	} while (v != 0);
	digits[--n] = 'x';
	digits[--n] = '0';
	out_bytes(o, digits + n, sizeof(digits) - n);
}

/* A duration in microseconds with one decimal ("12.3"). */
static void out_tenths(struct trace_out *o, double us)
{
	uint64_t tenths = us > 0 ? (uint64_t)(us * 10 + 0.5) : 0;
	out_unsigned(o, tenths / 10);
	char decimal[2] = { '.', (char)('0' + tenths % 10) };
	out_bytes(o, decimal, 2);
}

/* Starts an output in buf; size must be at least 8. */
static void out_start(struct trace_out *o, char *buf, size_t size)
{
	o->buf = buf;
	o->size = size - 5; /* "...\n" and the NUL */
	o->len = 0;
	o->cut = false;
}

static size_t out_finish(struct trace_out *o)
{
	if (o->cut) {
		memcpy(o->buf + o->len, "...", 3);
		o->len += 3;
	}
	o->buf[o->len++] = '\n';
	o->buf[o->len] = '\0';
	return o->len;
}

/* Escapes bytes: C style for text ("\n", "\x01"), \u00XX for JSON. */
static void out_escaped(struct trace_out *o, const unsigned char *s, size_t n, bool json)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			out_fmt(o, "\\%c", c);
		else if (c == '\n')
			out_str(o, "\\n");
		else if (c == '\r')
			out_str(o, "\\r");
		else if (c == '\t')
			out_str(o, "\\t");
		else if (c >= 0x20 && c < 0x7f)
			out_bytes(o, (const char *)&c, 1);
		else if (json)
			out_fmt(o, "\\u%04x", c);
		else
			out_fmt(o, "\\x%02x", c);
	}
}

/* ----- values ----- */

/* The value of an integer argument of libffi type `t` stored at `p`, sign- or zero-extended. */
static int64_t value_integer(const ffi_type *t, const void *p)
{
	switch (t->type) {
	case FFI_TYPE_SINT8: return *(const int8_t *)p;
	case FFI_TYPE_UINT8: return *(const uint8_t *)p;
	case FFI_TYPE_SINT16: return *(const int16_t *)p;
	case FFI_TYPE_UINT16: return *(const uint16_t *)p;
	case FFI_TYPE_SINT32: return *(const int32_t *)p;
	case FFI_TYPE_UINT32: return *(const uint32_t *)p;
	case FFI_TYPE_INT: return *(const int *)p;
	case FFI_TYPE_POINTER: return (int64_t)(uintptr_t) * (void *const *)p;
	default: return *(const int64_t *)p;
	}
}

/*
 * The return value: libffi stores an integer narrower than a register widened to ffi_arg,
 * so it is read as ffi_arg and cut to its type.
 */
static int64_t value_return(const ffi_type *t, const void *ret)
{
	if (t->size < sizeof(ffi_arg) && t->type != FFI_TYPE_FLOAT) {
		ffi_arg v = *(const ffi_arg *)ret;
		switch (t->type) {
		case FFI_TYPE_SINT8: return (int8_t)v;
		case FFI_TYPE_UINT8: return (uint8_t)v;
		case FFI_TYPE_SINT16: return (int16_t)v;
		case FFI_TYPE_UINT16: return (uint16_t)v;
		case FFI_TYPE_SINT32: case FFI_TYPE_INT: return (int32_t)v;
		default: return (int64_t)(uint32_t)v;
		}
	}
	return value_integer(t, ret);
}

static double value_double(const ffi_type *t, const void *p)
{
	return t->type == FFI_TYPE_FLOAT ? *(const float *)p : *(const double *)p;
}

/* ----- flag and constant names ----- */

struct flag_name {
	unsigned mask;  /* the bits this entry is about */
	unsigned value; /* matches when (v & mask) == value */
	const char *name;
};

#define ENUM_NAME(x) { ~0u, (unsigned)(x), #x }
#define BIT_NAME(x) { (unsigned)(x), (unsigned)(x), #x }

static const struct flag_name flags_msg[] = {
	BIT_NAME(MSG_OOB),	 BIT_NAME(MSG_PEEK),	BIT_NAME(MSG_DONTROUTE), BIT_NAME(MSG_CTRUNC),
	BIT_NAME(MSG_PROXY),	 BIT_NAME(MSG_TRUNC),	BIT_NAME(MSG_DONTWAIT),	 BIT_NAME(MSG_EOR),
	BIT_NAME(MSG_WAITALL),	 BIT_NAME(MSG_FIN),	BIT_NAME(MSG_SYN),	 BIT_NAME(MSG_CONFIRM),
	BIT_NAME(MSG_RST),	 BIT_NAME(MSG_ERRQUEUE), BIT_NAME(MSG_NOSIGNAL), BIT_NAME(MSG_MORE),
	BIT_NAME(MSG_WAITFORONE), BIT_NAME(MSG_ZEROCOPY), BIT_NAME(MSG_FASTOPEN),
	BIT_NAME(MSG_CMSG_CLOEXEC), { 0, 0, NULL },
};
static const struct flag_name flags_sock[] = {
	{ 0xf, SOCK_STREAM, "SOCK_STREAM" },	     { 0xf, SOCK_DGRAM, "SOCK_DGRAM" },
	{ 0xf, SOCK_RAW, "SOCK_RAW" },		     { 0xf, SOCK_RDM, "SOCK_RDM" },
	{ 0xf, SOCK_SEQPACKET, "SOCK_SEQPACKET" },   { 0xf, SOCK_PACKET, "SOCK_PACKET" },
	BIT_NAME(SOCK_NONBLOCK),		     BIT_NAME(SOCK_CLOEXEC),
	{ 0, 0, NULL },
};
static const struct flag_name flags_af[] = {
	ENUM_NAME(AF_UNSPEC), ENUM_NAME(AF_UNIX),    ENUM_NAME(AF_INET), ENUM_NAME(AF_INET6),
	ENUM_NAME(AF_NETLINK), ENUM_NAME(AF_PACKET), ENUM_NAME(AF_VSOCK), { 0, 0, NULL },
};
static const struct flag_name flags_shut[] = {
	ENUM_NAME(SHUT_RD), ENUM_NAME(SHUT_WR), ENUM_NAME(SHUT_RDWR), { 0, 0, NULL },
};
static const struct flag_name flags_open[] = {
	BIT_NAME(O_CLOEXEC), BIT_NAME(O_NONBLOCK), { 0, 0, NULL },
};
static const struct flag_name flags_fcntl[] = {
	ENUM_NAME(F_DUPFD),	  ENUM_NAME(F_GETFD),	    ENUM_NAME(F_SETFD),	   ENUM_NAME(F_GETFL),
	ENUM_NAME(F_SETFL),	  ENUM_NAME(F_GETLK),	    ENUM_NAME(F_SETLK),	   ENUM_NAME(F_SETLKW),
	ENUM_NAME(F_SETOWN),	  ENUM_NAME(F_GETOWN),	    ENUM_NAME(F_DUPFD_CLOEXEC),
	ENUM_NAME(F_SETPIPE_SZ), ENUM_NAME(F_GETPIPE_SZ), ENUM_NAME(F_ADD_SEALS), ENUM_NAME(F_GET_SEALS),
	{ 0, 0, NULL },
};
static const struct flag_name flags_epoll[] = {
	ENUM_NAME(EPOLL_CTL_ADD), ENUM_NAME(EPOLL_CTL_DEL), ENUM_NAME(EPOLL_CTL_MOD), { 0, 0, NULL },
};
static const struct flag_name flags_level[] = {
	ENUM_NAME(SOL_SOCKET),	 ENUM_NAME(IPPROTO_IP),	 ENUM_NAME(IPPROTO_TCP),
	ENUM_NAME(IPPROTO_UDP), ENUM_NAME(IPPROTO_IPV6), { 0, 0, NULL },
};

static const struct flag_name *const flag_tables[TRACE_FLAGS_COUNT] = {
	[TRACE_FLAGS_MSG] = flags_msg,	   [TRACE_FLAGS_SOCK] = flags_sock,
	[TRACE_FLAGS_AF] = flags_af,	   [TRACE_FLAGS_SHUT] = flags_shut,
	[TRACE_FLAGS_OPEN] = flags_open,   [TRACE_FLAGS_FCNTL] = flags_fcntl,
	[TRACE_FLAGS_EPOLL] = flags_epoll, [TRACE_FLAGS_LEVEL] = flags_level,
};

/* "MSG_NOSIGNAL|MSG_DONTWAIT"; bits without a name in hex; 0 as "0"; an unknown constant as a number. */
static void out_flags(struct trace_out *o, enum trace_flags which, int64_t v)
{
	const struct flag_name *table = flag_tables[which];
	unsigned left = (unsigned)v;
	bool any = false;
	if (v < 0 || v > UINT32_MAX) {
		out_signed(o, v);
		return;
	}
	for (const struct flag_name *f = table; f->name != NULL; f++) {
		bool whole = f->mask == ~0u;
		if ((whole && left == f->value && !any) ||
		    (!whole && f->value != 0 && (left & f->mask) == f->value)) {
			if (any)
				out_bytes(o, "|", 1);
			out_str(o, f->name);
			left = whole ? 0 : left & ~f->mask;
			any = true;
			if (whole)
				break;
		}
	}
	if (!any && table[0].mask == ~0u)
		out_unsigned(o, left); /* a constant without a name */
	else if (left != 0) {
		if (any)
			out_bytes(o, "|", 1);
		out_hex(o, left);
	}
	else if (!any)
		out_str(o, "0");
}

/* ----- socket addresses ----- */

static void out_sockaddr(struct trace_out *o, const struct sockaddr *sa, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	if (len < sizeof(sa_family_t)) {
		out_str(o, "?");
		return;
	}
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		out_str(o, host);
		out_bytes(o, ":", 1);
		out_unsigned(o, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		out_bytes(o, "[", 1);
		out_str(o, host);
		out_bytes(o, "]:", 2);
		out_unsigned(o, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)sa;
		size_t path = len - offsetof(struct sockaddr_un, sun_path);
		if (path > sizeof(un->sun_path))
			path = sizeof(un->sun_path);
		if (path == 0) {
			out_str(o, "unix:(unnamed)");
		} else if (un->sun_path[0] == '\0') {
			out_str(o, "unix:@");
			out_escaped(o, (const unsigned char *)un->sun_path + 1, path - 1, false);
		} else {
			out_str(o, "unix:");
			out_escaped(o, (const unsigned char *)un->sun_path, strnlen(un->sun_path, path),
				    false);
		}
	} else {
		out_str(o, "family=");
		out_flags(o, TRACE_FLAGS_AF, sa->sa_family);
	}
}

/* ----- arguments ----- */

struct format_context {
	const struct trace_call *call;
	bool json;
	bool deref;      /* memory the arguments point to may be read */
	int64_t ret;     /* the return value as an integer, when it is one */
	bool ret_known;
};

static int64_t context_arg(const struct format_context *c, int index)
{
	const struct trace_arg *a = &c->call->proto->args[index];
	return value_integer(a->type, c->call->args[index]);
}

static const void *context_pointer(const struct format_context *c, int index)
{
	return *(void *const *)c->call->args[index];
}

/* A JSON string or bare text, for values that are words ("NULL" stays null in JSON). */
static void out_word_open(struct trace_out *o, const struct format_context *c)
{
	if (c->json)
		out_str(o, "\"");
}

static void out_word_close(struct trace_out *o, const struct format_context *c)
{
	if (c->json)
		out_str(o, "\"");
}

static void out_pointer(struct trace_out *o, const struct format_context *c, const void *p)
{
	if (p == NULL) {
		out_str(o, c->json ? "null" : "NULL");
		return;
	}
	out_str(o, c->json ? "\"" : "");
	out_hex(o, (uintptr_t)p);
	out_str(o, c->json ? "\"" : "");
}

/* `len` bytes at p: `5:"hello"` (text) or {"len":5,"bytes":"hello"} (JSON), the first few only. */
static void out_bytes_head(struct trace_out *o, const struct format_context *c, const void *p,
			   uint64_t len, uint64_t available)
{
	size_t shown = (size_t)(available < TRACE_BYTES_SHOWN ? available : TRACE_BYTES_SHOWN);
	if (c->json) {
		out_str(o, "{\"len\":");
		out_unsigned(o, len);
		out_str(o, ",\"bytes\":\"");
		out_escaped(o, p, shown, true);
		out_str(o, "\"}");
		return;
	}
	out_unsigned(o, len);
	out_bytes(o, ":\"", 2);
	out_escaped(o, p, shown, false);
	out_str(o, len > shown ? "\"..." : "\"");
}

/* The first bytes of an iovec array, total length `total`, of which `valid` bytes hold data. */
static void out_iov(struct trace_out *o, const struct format_context *c, const struct iovec *iov,
		    int64_t count)
{
	unsigned char head[TRACE_BYTES_SHOWN];
	size_t have = 0;
	uint64_t total = 0;
	int64_t n = count < 0 ? 0 : count > 1024 ? 1024 : count;
	for (int64_t i = 0; i < n; i++)
		total += iov[i].iov_len;
	/* Bytes hold data up to what the call returned (sent, or received). */
	uint64_t valid = c->ret_known && c->ret > 0 ? (uint64_t)c->ret : 0;
	if (valid > total)
		valid = total;
	for (int64_t i = 0; i < n && have < sizeof(head) && have < valid; i++) {
		size_t take = iov[i].iov_len;
		if (take > sizeof(head) - have)
			take = sizeof(head) - have;
		if (take > valid - have)
			take = (size_t)(valid - have);
		if (take > 0 && iov[i].iov_base != NULL)
			memcpy(head + have, iov[i].iov_base, take);
		have += take;
	}
	if (c->json) {
		out_fmt(o, "{\"count\":%" PRId64 ",\"len\":%" PRIu64 ",\"bytes\":\"", count, total);
		out_escaped(o, head, have, true);
		out_str(o, "\"}");
		return;
	}
	out_fmt(o, "[%" PRId64 "]%" PRIu64, count, total);
	if (have > 0) {
		out_str(o, ":\"");
		out_escaped(o, head, have, false);
		out_str(o, total > have ? "\"..." : "\"");
	}
}

static void out_msghdr(struct trace_out *o, const struct format_context *c,
		       const struct msghdr *msg)
{
	if (c->json) {
		out_str(o, "{\"name\":");
		if (msg->msg_name != NULL && msg->msg_namelen > 0) {
			out_str(o, "\"");
			out_sockaddr(o, msg->msg_name, msg->msg_namelen);
			out_str(o, "\"");
		} else {
			out_str(o, "null");
		}
		out_str(o, ",\"iov\":");
		out_iov(o, c, msg->msg_iov, (int64_t)msg->msg_iovlen);
		out_str(o, "}");
		return;
	}
	out_str(o, "{");
	if (msg->msg_name != NULL && msg->msg_namelen > 0) {
		out_str(o, "name=");
		out_sockaddr(o, msg->msg_name, msg->msg_namelen);
		out_str(o, ", ");
	}
	out_str(o, "iov=");
	out_iov(o, c, msg->msg_iov, (int64_t)msg->msg_iovlen);
	out_str(o, "}");
}

/* One argument's value (index >= 0) or the return value (index -1). */
static void out_value(struct trace_out *o, const struct format_context *c, int index)
{
	const struct trace_proto *proto = c->call->proto;
	const struct trace_arg *a = index < 0 ? &proto->ret : &proto->args[index];
	const void *p = index < 0 ? c->call->ret : c->call->args[index];
	int64_t v = 0;
	if (a->type != &ffi_type_void && a->kind != TRACE_KIND_DOUBLE)
		v = index < 0 ? value_return(a->type, p) : value_integer(a->type, p);
	const void *ptr = (const void *)(uintptr_t)v;

	switch (a->kind) {
	case TRACE_KIND_VOID:
		out_str(o, c->json ? "null" : "void");
		return;
	case TRACE_KIND_INT:
	case TRACE_KIND_FD:
		out_signed(o, v);
		return;
	case TRACE_KIND_UINT:
		out_unsigned(o, (uint64_t)v);
		return;
	case TRACE_KIND_HEX:
		out_str(o, c->json ? "\"" : "");
		out_hex(o, (uint64_t)v);
		out_str(o, c->json ? "\"" : "");
		return;
	case TRACE_KIND_POINTER:
		out_pointer(o, c, ptr);
		return;
	case TRACE_KIND_DOUBLE:
		out_fmt(o, "%g", value_double(a->type, p));
		return;
	case TRACE_KIND_FLAGS:
		out_word_open(o, c);
		out_flags(o, a->flags, v);
		out_word_close(o, c);
		return;
	default:
		break;
	}
	/* The kinds below read the memory the argument points to. */
	if (ptr == NULL || !c->deref) {
		out_pointer(o, c, ptr);
		return;
	}
	switch (a->kind) {
	case TRACE_KIND_STRING: {
		size_t n = strnlen(ptr, TRACE_STRING_SHOWN + 1);
		out_str(o, "\"");
		out_escaped(o, ptr, n > TRACE_STRING_SHOWN ? TRACE_STRING_SHOWN : n, c->json);
		out_str(o, n > TRACE_STRING_SHOWN && !c->json ? "\"..." : "\"");
		return;
	}
	case TRACE_KIND_BUF: {
		int64_t len;
		if (a->len_arg == TRACE_LEN_RETURN) {
			if (!c->ret_known || c->ret < 0) {
				out_pointer(o, c, ptr); /* nothing came out */
				return;
			}
			len = c->ret;
		} else {
			len = context_arg(c, a->len_arg);
		}
		if (len < 0)
			len = 0;
		out_bytes_head(o, c, ptr, (uint64_t)len, (uint64_t)len);
		return;
	}
	case TRACE_KIND_SOCKADDR: {
		const struct trace_arg *la = &proto->args[a->len_arg];
		int64_t len;
		if (la->type == &ffi_type_pointer) {
			/* An address the call fills in (accept, getpeername): there after success. */
			const socklen_t *lp = context_pointer(c, a->len_arg);
			if (lp == NULL || !c->ret_known || c->ret < 0) {
				out_pointer(o, c, ptr);
				return;
			}
			len = *lp;
		} else {
			len = context_arg(c, a->len_arg);
		}
		if (len > (int64_t)sizeof(struct sockaddr_storage))
			len = sizeof(struct sockaddr_storage);
		out_word_open(o, c);
		out_sockaddr(o, ptr, len < 0 ? 0 : (size_t)len);
		out_word_close(o, c);
		return;
	}
	case TRACE_KIND_LEN_OUT:
		out_unsigned(o, *(const socklen_t *)ptr);
		return;
	case TRACE_KIND_IOV:
	case TRACE_KIND_MSG:
		/* A failed call may have refused a bogus count: read the array only after success. */
		if (c->ret_known && c->ret < 0)
			out_pointer(o, c, ptr);
		else if (a->kind == TRACE_KIND_IOV)
			out_iov(o, c, ptr, context_arg(c, a->len_arg));
		else
			out_msghdr(o, c, ptr);
		return;
	default:
		out_pointer(o, c, ptr);
		return;
	}
}

const char *trace_errno_name(int error, char *buf, size_t size)
{
	const char *name = strerrorname_np(error);
	if (name != NULL)
		return name;
	snprintf(buf, size, "errno %d", error);
	return buf;
}

/* Whether the call failed: a signed integer result of -1 (the libc convention). */
static bool context_failed(const struct format_context *c)
{
	const struct trace_arg *r = &c->call->proto->ret;
	return c->ret_known && c->ret == -1 &&
	       (r->kind == TRACE_KIND_INT || r->kind == TRACE_KIND_FD);
}

static void context_init(struct format_context *c, const struct trace_call *call, bool json)
{
	const struct trace_arg *r = &call->proto->ret;
	c->call = call;
	c->json = json;
	c->ret_known = r->type != &ffi_type_void && r->kind != TRACE_KIND_DOUBLE;
	c->ret = c->ret_known ? value_return(r->type, call->ret) : 0;
	/* After EFAULT an argument points to memory the kernel could not read: neither do we. */
	c->deref = !(context_failed(c) && call->error == EFAULT);
}

size_t trace_format_text(const struct trace_call *call, char *buf, size_t size)
{
	int saved = errno;
	struct trace_out o;
	struct format_context c;
	context_init(&c, call, false);
	out_start(&o, buf, size);
	out_str(&o, "viaudit: trace: ");
	out_signed(&o, call->pid);
	out_bytes(&o, ".", 1);
	out_signed(&o, call->tid);
	out_bytes(&o, " ", 1);
	out_str(&o, call->caller);
	out_bytes(&o, " ", 1);
	out_str(&o, call->proto->name);
	out_bytes(&o, "(", 1);
	for (unsigned i = 0; i < call->proto->nargs; i++) {
		if (i > 0)
			out_bytes(&o, ", ", 2);
		out_str(&o, call->proto->args[i].name);
		out_bytes(&o, "=", 1);
		out_value(&o, &c, (int)i);
	}
	out_str(&o, ") = ");
	out_value(&o, &c, -1);
	if (context_failed(&c)) {
		char number[24];
		out_bytes(&o, " ", 1);
		out_str(&o, trace_errno_name(call->error, number, sizeof(number)));
	}
	if (call->transport != NULL) {
		out_bytes(&o, " [", 2);
		out_str(&o, call->transport);
		out_bytes(&o, "]", 1);
	}
	out_bytes(&o, " ", 1);
	out_tenths(&o, call->duration_us);
	out_bytes(&o, "us", 2);
	size_t n = out_finish(&o);
	errno = saved;
	return n;
}

size_t trace_format_json(const struct trace_call *call, char *buf, size_t size)
{
	int saved = errno;
	struct trace_out o;
	struct format_context c;
	context_init(&c, call, true);
	out_start(&o, buf, size);
	out_fmt(&o, "{\"pid\":%ld,\"tid\":%ld,\"caller\":\"", call->pid, call->tid);
	out_escaped(&o, (const unsigned char *)call->caller, strlen(call->caller), true);
	out_fmt(&o, "\",\"symbol\":\"%s\",\"args\":{", call->proto->name);
	for (unsigned i = 0; i < call->proto->nargs; i++) {
		out_fmt(&o, "%s\"%s\":", i ? "," : "", call->proto->args[i].name);
		out_value(&o, &c, (int)i);
	}
	out_str(&o, "},\"ret\":");
	out_value(&o, &c, -1);
	if (context_failed(&c)) {
		char number[24];
		out_fmt(&o, ",\"errno\":\"%s\"", trace_errno_name(call->error, number, sizeof(number)));
	}
	if (call->transport != NULL)
		out_fmt(&o, ",\"transport\":\"%s\"", call->transport);
	out_str(&o, ",\"us\":");
	out_tenths(&o, call->duration_us);
	out_bytes(&o, "}", 1);
	if (o.cut) {
		/* A cut object would not parse: say so in one that does. */
		o.cut = false;
		o.len = 0;
		out_fmt(&o, "{\"pid\":%ld,\"tid\":%ld,\"symbol\":\"%s\",\"truncated\":true}", call->pid,
			call->tid, call->proto->name);
	}
	size_t n = out_finish(&o);
	errno = saved;
	return n;
}
