/*
 * The prototype parser: one C declaration per line, with optional annotations, into libffi
 * types and a decoding kind per argument. The socket functions' prototypes (from the
 * X-macro) and users' prototype files go through the same code.
 */
#include "trace_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define PROTO_TOKENS_MAX 128

enum proto_token_kind {
	TOK_END,
	TOK_IDENT,
	TOK_NUMBER,
	TOK_STAR,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_COMMA,
	TOK_SEMI,
	TOK_LBRACKET,
	TOK_RBRACKET,
	TOK_ELLIPSIS,
};

struct proto_token {
	enum proto_token_kind kind;
	const char *text;
	size_t len;
	unsigned col;
};

/* An annotation as written: `buf(3)`, `flags(msg)`, `fd`. */
enum proto_annotation_word {
	ANN_NONE,
	ANN_FD,
	ANN_STR,
	ANN_HEX,
	ANN_BUF,
	ANN_SOCKADDR,
	ANN_IOV,
	ANN_MSG,
	ANN_FLAGS,
};

struct proto_annotation {
	enum proto_annotation_word word;
	unsigned col;
	const struct proto_token *ref; /* the word between the parentheses, or NULL */
};

/* What the parser learned about a type beyond its libffi type, for inferring kinds. */
struct proto_type {
	unsigned col;
	unsigned pointers;
	bool pointee_const;  /* `const` before the first `*` */
	bool is_void;        /* void, not a pointer */
	bool is_integer;     /* an integer (or enum, bool), not a pointer */
	bool is_signed;
	bool is_float;
	ffi_type *ffi;
	char base[64];       /* "char", "void", "struct sockaddr", "socklen_t", "SSL", ... */
};

struct proto_param {
	struct proto_type type;
	struct proto_annotation annotation;
	unsigned col;
};

struct proto_parser {
	struct proto_token tokens[PROTO_TOKENS_MAX];
	size_t ntokens;
	size_t at;
	struct trace_proto_error *err;
};

static const char *const trace_flags_names[TRACE_FLAGS_COUNT] = {
	[TRACE_FLAGS_MSG] = "msg",     [TRACE_FLAGS_SOCK] = "sock",   [TRACE_FLAGS_AF] = "af",
	[TRACE_FLAGS_SHUT] = "shut",   [TRACE_FLAGS_OPEN] = "open",   [TRACE_FLAGS_FCNTL] = "fcntl",
	[TRACE_FLAGS_EPOLL] = "epoll", [TRACE_FLAGS_LEVEL] = "level",
};

const char *trace_flags_name(enum trace_flags flags)
{
	return flags < TRACE_FLAGS_COUNT ? trace_flags_names[flags] : "?";
}

__attribute__((format(printf, 3, 4))) static int proto_error(struct trace_proto_error *err,
							      unsigned col, const char *fmt, ...)
{
	err->col = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ----- tokens ----- */

static bool proto_is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool proto_is_ident_char(char c)
{
	return proto_is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Splits `text` into tokens. Returns 0, or -EINVAL at a character no declaration has. */
static int proto_tokenize(struct proto_parser *p, const char *text, size_t len)
{
	size_t i = 0;
	p->ntokens = 0;
	p->at = 0;
	while (i < len) {
		char c = text[i];
		if (c == ' ' || c == '\t' || c == '\r') {
			i++;
			continue;
		}
		if (p->ntokens == PROTO_TOKENS_MAX - 1)
			return proto_error(p->err, (unsigned)i + 1, "declaration too long");
		struct proto_token *t = &p->tokens[p->ntokens];
		t->text = text + i;
		t->col = (unsigned)i + 1;
		size_t start = i;
		if (proto_is_ident_start(c)) {
			while (i < len && proto_is_ident_char(text[i]))
				i++;
			t->kind = TOK_IDENT;
		} else if (c >= '0' && c <= '9') {
			while (i < len && proto_is_ident_char(text[i]))
				i++;
			t->kind = TOK_NUMBER;
		} else if (c == '.' && i + 2 < len && text[i + 1] == '.' && text[i + 2] == '.') {
			i += 3;
			t->kind = TOK_ELLIPSIS;
		} else {
			static const struct {
				char c;
				enum proto_token_kind kind;
			} punctuation[] = {
				{ '*', TOK_STAR },     { '(', TOK_LPAREN },   { ')', TOK_RPAREN },
				{ ',', TOK_COMMA },    { ';', TOK_SEMI },     { '[', TOK_LBRACKET },
				{ ']', TOK_RBRACKET },
			};
			size_t k;
			for (k = 0; k < sizeof(punctuation) / sizeof(punctuation[0]); k++)
				if (punctuation[k].c == c)
					break;
			if (k == sizeof(punctuation) / sizeof(punctuation[0])) {
				if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
					return proto_error(p->err, t->col, "unexpected character '%c'", c);
				return proto_error(p->err, t->col, "unexpected byte 0x%02x",
						   (unsigned char)c);
			}
			t->kind = punctuation[k].kind;
			i++;
		}
		t->len = i - start;
		p->ntokens++;
	}
	p->tokens[p->ntokens] = (struct proto_token){ TOK_END, text + len, 0, (unsigned)len + 1 };
	return 0;
}

static const struct proto_token *proto_peek(const struct proto_parser *p, size_t ahead)
{
	size_t i = p->at + ahead;
	return &p->tokens[i < p->ntokens ? i : p->ntokens];
}

static bool proto_token_is(const struct proto_token *t, const char *word)
{
	return t->kind == TOK_IDENT && strlen(word) == t->len && memcmp(t->text, word, t->len) == 0;
}

/* A token's text for a message, cut to fit. */
static const char *proto_token_text(const struct proto_token *t, char *buf, size_t size)
{
	if (t->kind == TOK_END)
		return "end of line";
	snprintf(buf, size, "'%.*s'", (int)(t->len < 40 ? t->len : 40), t->text);
	return buf;
}

/* ----- types ----- */

/* The libffi type of a signed or unsigned integer type T, by its size. */
#define PROTO_SIGNED(T) \
	(sizeof(T) == 8 ? &ffi_type_sint64 : sizeof(T) == 4 ? &ffi_type_sint32 \
					   : sizeof(T) == 2 ? &ffi_type_sint16 : &ffi_type_sint8)
#define PROTO_UNSIGNED(T) \
	(sizeof(T) == 8 ? &ffi_type_uint64 : sizeof(T) == 4 ? &ffi_type_uint32 \
					   : sizeof(T) == 2 ? &ffi_type_uint16 : &ffi_type_uint8)

/* The integer typedefs a declaration may use, with their libffi types. */
static ffi_type *proto_typedef(const struct proto_token *t)
{
	static const struct {
		const char *name;
		ffi_type *type;
	} typedefs[] = {
		{ "size_t", PROTO_UNSIGNED(size_t) },       { "ssize_t", PROTO_SIGNED(ssize_t) },
		{ "socklen_t", PROTO_UNSIGNED(socklen_t) }, { "off_t", PROTO_SIGNED(off_t) },
		{ "off64_t", PROTO_SIGNED(off64_t) },     { "pid_t", PROTO_SIGNED(pid_t) },
		{ "uid_t", PROTO_UNSIGNED(uid_t) },         { "gid_t", PROTO_UNSIGNED(gid_t) },
		{ "mode_t", PROTO_UNSIGNED(mode_t) },       { "time_t", PROTO_SIGNED(time_t) },
		{ "nfds_t", PROTO_UNSIGNED(unsigned long) },
		{ "sa_family_t", PROTO_UNSIGNED(sa_family_t) },
		{ "in_port_t", &ffi_type_uint16 },         { "in_addr_t", &ffi_type_uint32 },
		{ "intptr_t", PROTO_SIGNED(intptr_t) },   { "uintptr_t", PROTO_UNSIGNED(uintptr_t) },
		{ "ptrdiff_t", PROTO_SIGNED(ptrdiff_t) },
		{ "int8_t", &ffi_type_sint8 },             { "uint8_t", &ffi_type_uint8 },
		{ "int16_t", &ffi_type_sint16 },           { "uint16_t", &ffi_type_uint16 },
		{ "int32_t", &ffi_type_sint32 },           { "uint32_t", &ffi_type_uint32 },
		{ "int64_t", &ffi_type_sint64 },           { "uint64_t", &ffi_type_uint64 },
		{ "bool", &ffi_type_uint8 },               { "_Bool", &ffi_type_uint8 },
	};
	for (size_t i = 0; i < sizeof(typedefs) / sizeof(typedefs[0]); i++)
		if (proto_token_is(t, typedefs[i].name))
			return typedefs[i].type;
	return NULL;
}

static bool proto_is_qualifier(const struct proto_token *t)
{
	return proto_token_is(t, "const") || proto_token_is(t, "volatile") ||
	       proto_token_is(t, "restrict") || proto_token_is(t, "__restrict") ||
	       proto_token_is(t, "__restrict__");
}

static bool proto_ffi_is_signed(const ffi_type *t)
{
	return t->type == FFI_TYPE_SINT8 || t->type == FFI_TYPE_SINT16 ||
	       t->type == FFI_TYPE_SINT32 || t->type == FFI_TYPE_SINT64 || t->type == FFI_TYPE_INT;
}

static bool proto_ffi_is_integer(const ffi_type *t)
{
	switch (t->type) {
	case FFI_TYPE_INT:
	case FFI_TYPE_UINT8:
	case FFI_TYPE_SINT8:
	case FFI_TYPE_UINT16:
	case FFI_TYPE_SINT16:
	case FFI_TYPE_UINT32:
	case FFI_TYPE_SINT32:
	case FFI_TYPE_UINT64:
	case FFI_TYPE_SINT64:
		return true;
	default:
		return false;
	}
}

/*
 * Parses a type: qualifiers, specifiers (`unsigned long`, `struct sockaddr`, `size_t`, or a
 * name the parser does not know, which is only allowed behind a `*`) and `*`s. Stops before
 * the declarator's name. Returns 0 or -EINVAL.
 */
static int proto_parse_type(struct proto_parser *p, struct proto_type *type)
{
	char text[64];
	*type = (struct proto_type){ .col = proto_peek(p, 0)->col };
	unsigned nlong = 0, nshort = 0, nsigned = 0, nunsigned = 0;
	const struct proto_token *base = NULL;  /* int, char, void, float, double */
	const struct proto_token *named = NULL; /* a typedef, struct X, or an unknown name */
	bool record = false;
	ffi_type *typedef_type = NULL;
	for (;;) {
		const struct proto_token *t = proto_peek(p, 0);
		if (t->kind == TOK_STAR) {
			type->pointers++;
			p->at++;
			continue;
		}
		if (t->kind != TOK_IDENT)
			break;
		if (proto_is_qualifier(t)) {
			if (type->pointers == 0 && proto_token_is(t, "const"))
				type->pointee_const = true;
			p->at++;
			continue;
		}
		if (type->pointers > 0)
			break; /* the parameter's name */
		bool any = base || named || nlong || nshort || nsigned || nunsigned;
		if (proto_token_is(t, "long") || proto_token_is(t, "short") ||
		    proto_token_is(t, "signed") || proto_token_is(t, "unsigned")) {
			if (named != NULL)
				return proto_error(p->err, t->col, "%s cannot qualify '%.*s'",
						   proto_token_text(t, text, sizeof(text)),
						   (int)named->len, named->text);
			nlong += proto_token_is(t, "long");
			nshort += proto_token_is(t, "short");
			nsigned += proto_token_is(t, "signed");
			nunsigned += proto_token_is(t, "unsigned");
			p->at++;
			continue;
		}
		if (proto_token_is(t, "int") || proto_token_is(t, "char") || proto_token_is(t, "void") ||
		    proto_token_is(t, "float") || proto_token_is(t, "double")) {
			if (base != NULL || named != NULL)
				return proto_error(p->err, t->col, "two types in one declaration (%s)",
						   proto_token_text(t, text, sizeof(text)));
			base = t;
			p->at++;
			continue;
		}
		if (proto_token_is(t, "struct") || proto_token_is(t, "union") ||
		    proto_token_is(t, "enum")) {
			const struct proto_token *tag = proto_peek(p, 1);
			if (any)
				return proto_error(p->err, t->col, "two types in one declaration (%s)",
						   proto_token_text(t, text, sizeof(text)));
			if (tag->kind != TOK_IDENT)
				return proto_error(p->err, tag->col, "expected a name after '%.*s'",
						   (int)t->len, t->text);
			if (proto_token_is(t, "enum"))
				typedef_type = &ffi_type_sint32;
			else
				record = true;
			snprintf(type->base, sizeof(type->base), "%.*s %.*s", (int)t->len, t->text,
				 (int)tag->len, tag->text);
			named = tag;
			p->at += 2;
			continue;
		}
		if (any)
			break; /* the parameter's name */
		/* A typedef the parser knows, or a name it does not (only behind a pointer). */
		typedef_type = proto_typedef(t);
		snprintf(type->base, sizeof(type->base), "%.*s", (int)t->len, t->text);
		named = t;
		p->at++;
	}
	if (!base && !named && !nlong && !nshort && !nsigned && !nunsigned)
		return proto_error(p->err, proto_peek(p, 0)->col, "expected a type, found %s",
				   proto_token_text(proto_peek(p, 0), text, sizeof(text)));

	if (base != NULL)
		snprintf(type->base, sizeof(type->base), "%.*s", (int)base->len, base->text);
	else if (named == NULL)
		snprintf(type->base, sizeof(type->base), "int");
	bool is_char = strcmp(type->base, "char") == 0;
	bool is_int = strcmp(type->base, "int") == 0;
	bool is_double = strcmp(type->base, "double") == 0;
	if ((nsigned && nunsigned) || nsigned > 1 || nunsigned > 1 || nlong > 2 || nshort > 1 ||
	    (nshort && nlong) || ((nsigned || nunsigned) && !(is_char || is_int)) ||
	    (nshort && !is_int) || (nlong && !(is_int || is_double)))
		return proto_error(p->err, type->col, "invalid combination of type words");
	if (nlong && is_double)
		return proto_error(p->err, type->col, "long double is not supported");

	if (type->pointers > 0) {
		type->ffi = &ffi_type_pointer;
		return 0;
	}
	if (record)
		return proto_error(p->err, type->col,
				   "'%s' is passed by value; only pointers to structs and unions can "
				   "be traced",
				   type->base);
	if (named != NULL && typedef_type == NULL)
		return proto_error(p->err, named->col,
				   "unknown type '%.*s' (a type the parser does not know can only be "
				   "passed by pointer)",
				   (int)named->len, named->text);
	if (named != NULL) {
		type->ffi = typedef_type;
	} else if (strcmp(type->base, "void") == 0) {
		type->is_void = true;
		type->ffi = &ffi_type_void;
		return 0;
	} else if (strcmp(type->base, "float") == 0) {
		type->ffi = &ffi_type_float;
	} else if (is_double) {
		type->ffi = &ffi_type_double;
	} else if (is_char) {
		type->ffi = nunsigned ? &ffi_type_uint8 : &ffi_type_sint8;
	} else if (nshort) {
		type->ffi = nunsigned ? &ffi_type_uint16 : &ffi_type_sint16;
	} else if (nlong) {
		type->ffi = nunsigned ? PROTO_UNSIGNED(unsigned long) : PROTO_SIGNED(long);
	} else {
		type->ffi = nunsigned ? &ffi_type_uint32 : &ffi_type_sint32;
	}
	type->is_float = type->ffi == &ffi_type_float || type->ffi == &ffi_type_double;
	type->is_integer = !type->is_float;
	type->is_signed = proto_ffi_is_signed(type->ffi);
	return 0;
}

/* ----- annotations ----- */

static const struct {
	const char *word;
	enum proto_annotation_word value;
	bool takes_argument;
} proto_annotations[] = {
	{ "fd", ANN_FD, false },	    { "str", ANN_STR, false },	{ "hex", ANN_HEX, false },
	{ "buf", ANN_BUF, true },	    { "sockaddr", ANN_SOCKADDR, true },
	{ "iov", ANN_IOV, true },	    { "msg", ANN_MSG, false },	{ "flags", ANN_FLAGS, true },
};

static int proto_annotation_index(const struct proto_token *t)
{
	for (size_t i = 0; i < sizeof(proto_annotations) / sizeof(proto_annotations[0]); i++)
		if (proto_token_is(t, proto_annotations[i].word))
			return (int)i;
	return -1;
}

/*
 * Parses an annotation if one starts here: an annotation word followed by `(` or by the
 * type (an identifier). `fd int x` is annotated; `str *p` is a pointer to a type `str`.
 * Returns 0 or -EINVAL.
 */
static int proto_parse_annotation(struct proto_parser *p, struct proto_annotation *a)
{
	*a = (struct proto_annotation){ ANN_NONE, 0, NULL };
	const struct proto_token *t = proto_peek(p, 0);
	const struct proto_token *next = proto_peek(p, 1);
	int i = proto_annotation_index(t);
	if (i < 0 || (next->kind != TOK_LPAREN && next->kind != TOK_IDENT))
		return 0;
	a->word = proto_annotations[i].value;
	a->col = t->col;
	p->at++;
	if (!proto_annotations[i].takes_argument) {
		if (next->kind == TOK_LPAREN)
			return proto_error(p->err, next->col, "annotation '%s' takes no argument",
					   proto_annotations[i].word);
		return 0;
	}
	if (next->kind != TOK_LPAREN)
		return proto_error(p->err, next->col, "annotation '%s' needs an argument: %s(...)",
				   proto_annotations[i].word, proto_annotations[i].word);
	p->at++;
	const struct proto_token *ref = proto_peek(p, 0);
	if (ref->kind != TOK_IDENT && ref->kind != TOK_NUMBER)
		return proto_error(p->err, ref->col, "expected a parameter number, name%s in %s(...)",
				   a->word == ANN_FLAGS ? " or kind" : " or ret",
				   proto_annotations[i].word);
	a->ref = ref;
	p->at++;
	const struct proto_token *close = proto_peek(p, 0);
	if (close->kind != TOK_RPAREN)
		return proto_error(p->err, close->col, "expected ')' to close %s(",
				   proto_annotations[i].word);
	p->at++;
	return 0;
}

/*
 * Finds the argument a length reference names: a 1-based number, a parameter name, or
 * `ret` (TRACE_LEN_RETURN, when allow_return). Stores its index in *index. Returns 0 or
 * -EINVAL.
 */
static int proto_resolve_ref(const struct trace_proto *proto, unsigned self,
			     const struct proto_token *ref, bool allow_return, int *index,
			     struct trace_proto_error *err)
{
	if (ref->kind == TOK_NUMBER) {
		char *end;
		char digits[16];
		snprintf(digits, sizeof(digits), "%.*s", (int)(ref->len < 15 ? ref->len : 15), ref->text);
		unsigned long n = strtoul(digits, &end, 10);
		if (*end != '\0' || n < 1 || n > proto->nargs)
			return proto_error(err, ref->col,
					   "parameter number '%.*s' is out of range (1 to %u)",
					   (int)ref->len, ref->text, proto->nargs);
		*index = (int)n - 1;
	} else if (proto_token_is(ref, "ret")) {
		if (!allow_return)
			return proto_error(err, ref->col, "'ret' cannot be used here");
		if (!proto_ffi_is_integer(proto->ret.type))
			return proto_error(err, ref->col,
					   "'ret' needs a function that returns an integer");
		*index = TRACE_LEN_RETURN;
		return 0;
	} else {
		unsigned i;
		for (i = 0; i < proto->nargs; i++)
			if (strlen(proto->args[i].name) == ref->len &&
			    memcmp(proto->args[i].name, ref->text, ref->len) == 0)
				break;
		if (i == proto->nargs)
			return proto_error(err, ref->col, "no parameter named '%.*s'", (int)ref->len,
					   ref->text);
		*index = (int)i;
	}
	if ((unsigned)*index == self)
		return proto_error(err, ref->col, "a parameter cannot be its own length");
	return 0;
}

/* Applies annotation `a` to argument `index` (-1: the return value). Returns 0 or -EINVAL. */
static int proto_apply_annotation(struct trace_proto *proto, int index,
				  const struct proto_annotation *a, struct trace_proto_error *err)
{
	struct trace_arg *arg = index < 0 ? &proto->ret : &proto->args[index];
	bool pointer = arg->type == &ffi_type_pointer;
	bool integer = proto_ffi_is_integer(arg->type);
	const char *word = "?";
	for (size_t i = 0; i < sizeof(proto_annotations) / sizeof(proto_annotations[0]); i++)
		if (proto_annotations[i].value == a->word)
			word = proto_annotations[i].word;
	bool for_return_too = a->word == ANN_FD || a->word == ANN_STR || a->word == ANN_HEX ||
			      a->word == ANN_FLAGS;
	if (index < 0 && !for_return_too)
		return proto_error(err, a->col, "annotation '%s' does not apply to a return value",
				   word);
	switch (a->word) {
	case ANN_NONE:
		return 0;
	case ANN_FD:
		if (!integer)
			return proto_error(err, a->col, "'fd' needs an integer");
		arg->kind = TRACE_KIND_FD;
		return 0;
	case ANN_HEX:
		if (!integer && !pointer)
			return proto_error(err, a->col, "'hex' needs an integer or a pointer");
		arg->kind = TRACE_KIND_HEX;
		return 0;
	case ANN_STR:
	case ANN_MSG:
		if (!pointer)
			return proto_error(err, a->col, "'%s' needs a pointer", word);
		arg->kind = a->word == ANN_STR ? TRACE_KIND_STRING : TRACE_KIND_MSG;
		return 0;
	case ANN_FLAGS: {
		if (!integer)
			return proto_error(err, a->col, "'flags' needs an integer");
		unsigned k;
		for (k = 0; k < TRACE_FLAGS_COUNT; k++)
			if (proto_token_is(a->ref, trace_flags_names[k]))
				break;
		if (k == TRACE_FLAGS_COUNT)
			return proto_error(err, a->ref->col,
					   "unknown flags kind '%.*s' (expected msg, sock, af, shut, "
					   "open, fcntl, epoll or level)",
					   (int)a->ref->len, a->ref->text);
		arg->kind = TRACE_KIND_FLAGS;
		arg->flags = (enum trace_flags)k;
		return 0;
	}
	case ANN_BUF:
	case ANN_SOCKADDR:
	case ANN_IOV: {
		if (!pointer)
			return proto_error(err, a->col, "'%s' needs a pointer", word);
		int len = 0;
		int r = proto_resolve_ref(proto, (unsigned)index, a->ref, a->word == ANN_BUF, &len,
					  err);
		if (r < 0)
			return r;
		if (len >= 0) {
			const ffi_type *lt = proto->args[len].type;
			bool ok = proto_ffi_is_integer(lt) ||
				  (a->word == ANN_SOCKADDR && lt == &ffi_type_pointer);
			if (!ok)
				return proto_error(err, a->ref->col,
						   "length parameter '%s' is not an integer%s",
						   proto->args[len].name,
						   a->word == ANN_SOCKADDR ? " or a socklen_t *" : "");
		}
		arg->kind = a->word == ANN_BUF ? TRACE_KIND_BUF
			    : a->word == ANN_SOCKADDR ? TRACE_KIND_SOCKADDR
						      : TRACE_KIND_IOV;
		arg->len_arg = len;
		return 0;
	}
	}
	return 0;
}

/* ----- inference: the kind of an argument nobody annotated ----- */

/* `fd`, `sockfd`, `epfd`, `in_fd`, `newfd`: names that say "descriptor". */
static bool proto_name_is_fd(const char *name)
{
	size_t n = strlen(name);
	return n >= 2 && strcmp(name + n - 2, "fd") == 0;
}

static bool proto_type_is_size(const struct proto_type *t)
{
	return t->pointers == 0 &&
	       (strcmp(t->base, "size_t") == 0 || strcmp(t->base, "socklen_t") == 0);
}

static void proto_infer_value(struct trace_arg *arg, const struct proto_type *t)
{
	if (t->is_void)
		arg->kind = TRACE_KIND_VOID;
	else if (t->is_float)
		arg->kind = TRACE_KIND_DOUBLE;
	else if (t->pointers > 0)
		arg->kind = TRACE_KIND_POINTER;
	else
		arg->kind = t->is_signed ? TRACE_KIND_INT : TRACE_KIND_UINT;
}

static void proto_infer(struct trace_proto *proto, const struct proto_param *params,
			const struct proto_type *ret)
{
	proto_infer_value(&proto->ret, ret);
	if (ret->pointers == 1 && ret->pointee_const && strcmp(ret->base, "char") == 0)
		proto->ret.kind = TRACE_KIND_STRING;
	for (unsigned i = 0; i < proto->nfixed; i++) {
		struct trace_arg *arg = &proto->args[i];
		const struct proto_type *t = &params[i].type;
		const struct proto_type *next = i + 1 < proto->nfixed ? &params[i + 1].type : NULL;
		proto_infer_value(arg, t);
		if (t->is_integer && proto_name_is_fd(arg->name)) {
			arg->kind = TRACE_KIND_FD;
			continue;
		}
		if (t->pointers != 1)
			continue;
		if (strcmp(t->base, "char") == 0 && t->pointee_const) {
			arg->kind = TRACE_KIND_STRING;
		} else if (strcmp(t->base, "struct sockaddr") == 0 && next != NULL &&
			   (next->is_integer ||
			    (next->pointers == 1 && strcmp(next->base, "socklen_t") == 0))) {
			arg->kind = TRACE_KIND_SOCKADDR;
			arg->len_arg = (int)i + 1;
		} else if (strcmp(t->base, "socklen_t") == 0) {
			arg->kind = TRACE_KIND_LEN_OUT;
		} else if (strcmp(t->base, "void") == 0 && next != NULL && proto_type_is_size(next)) {
			/* Bytes going in are all there; bytes coming out are what the call returns. */
			bool out = !t->pointee_const && proto_ffi_is_integer(proto->ret.type);
			arg->kind = TRACE_KIND_BUF;
			arg->len_arg = out ? TRACE_LEN_RETURN : (int)i + 1;
		} else if (strcmp(t->base, "struct iovec") == 0 && next != NULL && next->is_integer) {
			arg->kind = TRACE_KIND_IOV;
			arg->len_arg = (int)i + 1;
		} else if (strcmp(t->base, "struct msghdr") == 0) {
			arg->kind = TRACE_KIND_MSG;
		}
	}
}

/* ----- declarations ----- */

/* Parses a parameter's name and array brackets (`char buf[]` is a pointer). Returns 0 or -EINVAL. */
static int proto_parse_declarator(struct proto_parser *p, struct proto_type *type, char *name,
				  unsigned index)
{
	char text[64];
	const struct proto_token *t = proto_peek(p, 0);
	if (t->kind == TOK_LPAREN)
		return proto_error(p->err, t->col,
				   "function pointer parameters are not supported (declare it void *)");
	if (t->kind == TOK_IDENT) {
		if (t->len >= TRACE_NAME_MAX)
			return proto_error(p->err, t->col, "name too long");
		snprintf(name, TRACE_NAME_MAX, "%.*s", (int)t->len, t->text);
		p->at++;
	} else {
		snprintf(name, TRACE_NAME_MAX, "arg%u", index + 1);
	}
	while (proto_peek(p, 0)->kind == TOK_LBRACKET) {
		p->at++;
		while (proto_peek(p, 0)->kind == TOK_NUMBER || proto_peek(p, 0)->kind == TOK_IDENT)
			p->at++;
		t = proto_peek(p, 0);
		if (t->kind != TOK_RBRACKET)
			return proto_error(p->err, t->col, "expected ']', found %s",
					   proto_token_text(t, text, sizeof(text)));
		p->at++;
		type->pointers++;
		type->ffi = &ffi_type_pointer;
		type->is_integer = type->is_float = type->is_void = false;
	}
	return 0;
}

int trace_proto_parse(const char *text, size_t len, struct trace_proto *out,
		      struct trace_proto_error *err)
{
	struct proto_parser parser;
	struct proto_parser *p = &parser;
	struct proto_param params[TRACE_ARGS_MAX];
	struct proto_annotation ret_annotation;
	struct proto_type ret;
	char word[64];
	int r;

	memset(out, 0, sizeof(*out));
	p->err = err;
	if ((r = proto_tokenize(p, text, len)) < 0)
		return r;
	if (proto_token_is(proto_peek(p, 0), "extern"))
		p->at++;
	if ((r = proto_parse_annotation(p, &ret_annotation)) < 0 ||
	    (r = proto_parse_type(p, &ret)) < 0)
		return r;
	const struct proto_token *name = proto_peek(p, 0);
	if (name->kind != TOK_IDENT)
		return proto_error(err, name->col, "expected the function's name, found %s",
				   proto_token_text(name, word, sizeof(word)));
	if (name->len >= TRACE_NAME_MAX)
		return proto_error(err, name->col, "name too long");
	snprintf(out->name, sizeof(out->name), "%.*s", (int)name->len, name->text);
	p->at++;
	const struct proto_token *open = proto_peek(p, 0);
	if (open->kind != TOK_LPAREN)
		return proto_error(err, open->col, "expected '(' after the function's name, found %s",
				   proto_token_text(open, word, sizeof(word)));
	p->at++;
	out->ret.type = ret.ffi;

	/* (void) and () declare no parameters. */
	if (proto_token_is(proto_peek(p, 0), "void") && proto_peek(p, 1)->kind == TOK_RPAREN)
		p->at++;
	while (proto_peek(p, 0)->kind != TOK_RPAREN) {
		const struct proto_token *t = proto_peek(p, 0);
		if (out->nargs == TRACE_ARGS_MAX)
			return proto_error(err, t->col, "too many parameters (at most %d)",
					   TRACE_ARGS_MAX);
		if (t->kind == TOK_ELLIPSIS) {
			if (out->nargs == 0)
				return proto_error(err, t->col, "'...' needs a parameter before it");
			if (proto_peek(p, 1)->kind != TOK_RPAREN)
				return proto_error(err, proto_peek(p, 1)->col,
						   "'...' must be the last parameter");
			p->at++;
			out->variadic = true;
			/* The variadic word of fcntl and ioctl: passed on as one word, shown in hex. */
			struct trace_arg *arg = &out->args[out->nargs++];
			snprintf(arg->name, sizeof(arg->name), "arg");
			arg->type = PROTO_UNSIGNED(unsigned long);
			arg->kind = TRACE_KIND_HEX;
			break;
		}
		struct proto_param *param = &params[out->nargs];
		param->col = t->col;
		if ((r = proto_parse_annotation(p, &param->annotation)) < 0 ||
		    (r = proto_parse_type(p, &param->type)) < 0)
			return r;
		if (param->type.is_void)
			return proto_error(err, param->type.col,
					   "a parameter cannot be void (write (void) for none)");
		struct trace_arg *arg = &out->args[out->nargs];
		if ((r = proto_parse_declarator(p, &param->type, arg->name, out->nargs)) < 0)
			return r;
		arg->type = param->type.ffi;
		out->nargs++;
		t = proto_peek(p, 0);
		if (t->kind == TOK_COMMA) {
			p->at++;
			if (proto_peek(p, 0)->kind == TOK_RPAREN)
				return proto_error(err, proto_peek(p, 0)->col,
						   "expected a parameter after ','");
		} else if (t->kind != TOK_RPAREN) {
			return proto_error(err, t->col, "expected ',' or ')', found %s",
					   proto_token_text(t, word, sizeof(word)));
		}
	}
	p->at++; /* ')' */
	if (proto_peek(p, 0)->kind == TOK_SEMI)
		p->at++;
	if (proto_peek(p, 0)->kind != TOK_END)
		return proto_error(err, proto_peek(p, 0)->col, "unexpected %s after the declaration",
				   proto_token_text(proto_peek(p, 0), word, sizeof(word)));

	out->nfixed = out->variadic ? out->nargs - 1 : out->nargs;
	for (unsigned i = 0; i < out->nargs; i++)
		out->types[i] = out->args[i].type;
	proto_infer(out, params, &ret);
	if (ret_annotation.word != ANN_NONE &&
	    (r = proto_apply_annotation(out, -1, &ret_annotation, err)) < 0)
		return r;
	for (unsigned i = 0; i < out->nfixed; i++)
		if (params[i].annotation.word != ANN_NONE &&
		    (r = proto_apply_annotation(out, (int)i, &params[i].annotation, err)) < 0)
			return r;
	return 0;
}

int trace_proto_annotate(struct trace_proto *proto, const char *param, const char *annotation,
			 struct trace_proto_error *err)
{
	struct proto_parser parser;
	struct proto_parser *p = &parser;
	struct proto_annotation a;
	int index = -1;
	int r;

	p->err = err;
	if (param != NULL) {
		for (index = 0; index < (int)proto->nfixed; index++)
			if (strcmp(proto->args[index].name, param) == 0)
				break;
		if (index == (int)proto->nfixed)
			return proto_error(err, 1, "%s has no parameter '%s'", proto->name, param);
	}
	if ((r = proto_tokenize(p, annotation, strlen(annotation))) < 0)
		return r;
	/* The annotation alone: pretend a type follows, as it would in a declaration. */
	p->tokens[p->ntokens] = (struct proto_token){ TOK_IDENT, "int", 3, p->tokens[p->ntokens].col };
	p->tokens[p->ntokens + 1] = (struct proto_token){ TOK_END, "", 0, p->tokens[p->ntokens].col };
	p->ntokens++;
	if ((r = proto_parse_annotation(p, &a)) < 0)
		return r;
	if (a.word == ANN_NONE || p->at != p->ntokens - 1)
		return proto_error(err, 1, "'%s' is not an annotation", annotation);
	return proto_apply_annotation(proto, index, &a, err);
}

/* ----- files ----- */

struct proto_file_state {
	const char *file;
	trace_proto_report_fn *report;
	void *context;
};

__attribute__((format(printf, 5, 6))) static void proto_report(const struct proto_file_state *s,
								const char *severity,
								unsigned line, unsigned col,
								const char *fmt, ...)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "%s:%u:%u: %s: ", s->file, line, col, severity);
	if (n < 0 || (size_t)n >= sizeof(text))
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	if (s->report != NULL)
		s->report(s->context, text);
}

/* The length of `line` up to a `#` or `//` comment. */
static size_t proto_strip_comment(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '#' || (line[i] == '/' && i + 1 < len && line[i + 1] == '/'))
			return i;
	}
	return len;
}

static bool proto_is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

int trace_proto_parse_file(const char *text, size_t len, const char *file,
			   struct trace_proto **protos, size_t *count,
			   trace_proto_report_fn *report, void *context)
{
	struct proto_file_state s = { file != NULL ? file : "<prototypes>", report, context };
	struct trace_proto *list = NULL;
	unsigned *lines = NULL; /* where each prototype was declared, for duplicate warnings */
	size_t n = 0, cap = 0;
	int errors = 0;
	unsigned line = 0;

	*protos = NULL;
	*count = 0;
	for (size_t at = 0; at < len;) {
		const char *start = text + at;
		const char *newline = memchr(start, '\n', len - at);
		size_t line_len = newline ? (size_t)(newline - start) : len - at;
		at += line_len + (newline != NULL);
		line++;
		size_t code_len = proto_strip_comment(start, line_len);
		if (proto_is_blank(start, code_len))
			continue;
		struct trace_proto proto;
		struct trace_proto_error err;
		if (trace_proto_parse(start, code_len, &proto, &err) < 0) {
			proto_report(&s, "error", line, err.col, "%s", err.message);
			errors++;
			continue;
		}
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(list[i].name, proto.name) == 0)
				break;
		if (i < n) {
			const char *at_name = memmem(start, code_len, proto.name, strlen(proto.name));
			unsigned col = at_name != NULL ? (unsigned)(at_name - start) + 1 : 1;
			proto_report(&s, "warning", line, col,
				     "'%s' was declared at line %u; this declaration replaces it",
				     proto.name, lines[i]);
		} else {
			if (n == cap) {
				size_t want = cap ? cap * 2 : 16;
				struct trace_proto *grown = realloc(list, want * sizeof(*list));
				unsigned *grown_lines = grown ? realloc(lines, want * sizeof(*lines)) : NULL;
				if (grown != NULL)
					list = grown;
				if (grown == NULL || grown_lines == NULL) {
					free(list);
					free(lines);
					return -ENOMEM;
				}
				lines = grown_lines;
				cap = want;
			}
			n++;
		}
		list[i] = proto;
		lines[i] = line;
	}
	free(lines);
	if (errors > 0) {
		free(list);
		return errors;
	}
	*protos = list;
	*count = n;
	return 0;
}
