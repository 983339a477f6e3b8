/* Unit tests of the prototype parser: declarations, annotations, the socket table, files and every error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trace_proto.h"
#include "trace_socket.h"

static struct trace_proto proto;

static void parse_ok(const char *text)
{
	struct trace_proto_error err;
	int r = trace_proto_parse(text, strlen(text), &proto, &err);
	if (r != 0)
		fail_msg("'%s' did not parse: column %u: %s", text, err.col, err.message);
}

/* ----- declarations ----- */

static void test_socket_style_declaration_gives_types_and_kinds(void **state)
{
	parse_ok("ssize_t send(int fd, const void *buf, size_t len, int flags)");
	assert_string_equal(proto.name, "send");
	assert_int_equal(proto.nargs, 4);
	assert_false(proto.variadic);
	assert_ptr_equal(proto.ret.type, &ffi_type_sint64);
	assert_int_equal(proto.ret.kind, TRACE_KIND_INT);
	assert_string_equal(proto.args[0].name, "fd");
	assert_int_equal(proto.args[0].kind, TRACE_KIND_FD);
	assert_ptr_equal(proto.args[0].type, &ffi_type_sint32);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_BUF);
	assert_int_equal(proto.args[1].len_arg, 2);
	assert_ptr_equal(proto.args[1].type, &ffi_type_pointer);
	assert_int_equal(proto.args[2].kind, TRACE_KIND_UINT);
	assert_ptr_equal(proto.args[2].type, &ffi_type_uint64);
	assert_int_equal(proto.args[3].kind, TRACE_KIND_INT);
	for (unsigned i = 0; i < proto.nargs; i++)
		assert_ptr_equal(proto.types[i], proto.args[i].type);
}

static void test_output_buffer_length_is_the_return_value(void **state)
{
	parse_ok("ssize_t read(int fd, void *buf, size_t count)");
	assert_int_equal(proto.args[1].kind, TRACE_KIND_BUF);
	assert_int_equal(proto.args[1].len_arg, TRACE_LEN_RETURN);
}

static void test_sockaddr_takes_its_length_from_the_next_argument(void **state)
{
	parse_ok("int connect(int fd, const struct sockaddr *addr, socklen_t len)");
	assert_int_equal(proto.args[1].kind, TRACE_KIND_SOCKADDR);
	assert_int_equal(proto.args[1].len_arg, 2);
	assert_ptr_equal(proto.args[2].type, &ffi_type_uint32);
	parse_ok("int accept(int fd, struct sockaddr *addr, socklen_t *len)");
	assert_int_equal(proto.args[1].kind, TRACE_KIND_SOCKADDR);
	assert_int_equal(proto.args[2].kind, TRACE_KIND_LEN_OUT);
}

static void test_descriptor_names_are_fds(void **state)
{
	parse_ok("int f(int sockfd, int epfd, int in_fd, int nfds, long fd)");
	assert_int_equal(proto.args[0].kind, TRACE_KIND_FD);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_FD);
	assert_int_equal(proto.args[2].kind, TRACE_KIND_FD);
	assert_int_equal(proto.args[3].kind, TRACE_KIND_INT);
	assert_int_equal(proto.args[4].kind, TRACE_KIND_FD);
}

static void test_const_char_pointer_is_a_string(void **state)
{
	parse_ok("const char *f(const char *name, char *out, char const *other)");
	assert_int_equal(proto.ret.kind, TRACE_KIND_STRING);
	assert_int_equal(proto.args[0].kind, TRACE_KIND_STRING);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_POINTER);
	assert_int_equal(proto.args[2].kind, TRACE_KIND_STRING);
}

static void test_integer_types_map_to_libffi_types(void **state)
{
	parse_ok("unsigned long f(char a, unsigned char b, short c, unsigned short d, long long e, "
		 "uint8_t f, bool g, enum colour h, double i, float j, unsigned k, signed char l)");
	assert_ptr_equal(proto.ret.type, &ffi_type_uint64);
	assert_int_equal(proto.ret.kind, TRACE_KIND_UINT);
	ffi_type *expected[] = { &ffi_type_sint8,  &ffi_type_uint8,  &ffi_type_sint16,
				 &ffi_type_uint16, &ffi_type_sint64, &ffi_type_uint8,
				 &ffi_type_uint8,  &ffi_type_sint32, &ffi_type_double,
				 &ffi_type_float,  &ffi_type_uint32, &ffi_type_sint8 };
	assert_int_equal(proto.nargs, 12);
	for (unsigned i = 0; i < proto.nargs; i++)
		assert_ptr_equal(proto.args[i].type, expected[i]);
	assert_int_equal(proto.args[8].kind, TRACE_KIND_DOUBLE);
}

static void test_unnamed_parameters_are_named_by_position(void **state)
{
	parse_ok("int SSL_read(SSL *, void *, int);");
	assert_string_equal(proto.args[0].name, "arg1");
	assert_string_equal(proto.args[2].name, "arg3");
	assert_int_equal(proto.args[0].kind, TRACE_KIND_POINTER);
}

static void test_void_and_empty_lists_declare_no_parameters(void **state)
{
	parse_ok("int f(void)");
	assert_int_equal(proto.nargs, 0);
	parse_ok("void g()");
	assert_int_equal(proto.nargs, 0);
	assert_int_equal(proto.ret.kind, TRACE_KIND_VOID);
}

static void test_array_parameter_is_a_pointer(void **state)
{
	parse_ok("int f(char name[], int v[16])");
	assert_ptr_equal(proto.args[0].type, &ffi_type_pointer);
	assert_ptr_equal(proto.args[1].type, &ffi_type_pointer);
}

static void test_extern_and_semicolon_and_qualifiers_are_accepted(void **state)
{
	parse_ok("extern void *memcpy(void *restrict dest, const void *__restrict src, size_t n);");
	assert_int_equal(proto.nargs, 3);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_BUF);
	assert_int_equal(proto.args[1].len_arg, 2);
}

static void test_variadic_word_is_one_hex_argument(void **state)
{
	parse_ok("int fcntl(int fd, int cmd, ...)");
	assert_true(proto.variadic);
	assert_int_equal(proto.nfixed, 2);
	assert_int_equal(proto.nargs, 3);
	assert_string_equal(proto.args[2].name, "arg");
	assert_int_equal(proto.args[2].kind, TRACE_KIND_HEX);
	assert_ptr_equal(proto.args[2].type, &ffi_type_uint64);
}

/* ----- annotations ----- */

static void test_buf_ret_annotation_reads_length_from_result(void **state)
{
	parse_ok("int SSL_read(SSL *ssl, buf(ret) void *buf, int num);");
	assert_int_equal(proto.args[1].kind, TRACE_KIND_BUF);
	assert_int_equal(proto.args[1].len_arg, TRACE_LEN_RETURN);
}

static void test_buf_annotation_by_name_and_by_number(void **state)
{
	parse_ok("int SSL_write(SSL *ssl, buf(num) const void *buf, int num);");
	assert_int_equal(proto.args[1].len_arg, 2);
	parse_ok("int SSL_write(SSL *ssl, buf(3) const void *buf, int num);");
	assert_int_equal(proto.args[1].len_arg, 2);
}

static void test_flags_fd_str_hex_sockaddr_iov_msg_annotations(void **state)
{
	parse_ok("fd int f(flags(msg) int a, flags(af) int b, str char *c, hex unsigned d, "
		 "sockaddr(len) void *e, int len, iov(8) void *g, int n, msg void *m)");
	assert_int_equal(proto.ret.kind, TRACE_KIND_FD);
	assert_int_equal(proto.args[0].kind, TRACE_KIND_FLAGS);
	assert_int_equal(proto.args[0].flags, TRACE_FLAGS_MSG);
	assert_int_equal(proto.args[1].flags, TRACE_FLAGS_AF);
	assert_int_equal(proto.args[2].kind, TRACE_KIND_STRING);
	assert_int_equal(proto.args[3].kind, TRACE_KIND_HEX);
	assert_int_equal(proto.args[4].kind, TRACE_KIND_SOCKADDR);
	assert_int_equal(proto.args[4].len_arg, 5);
	assert_int_equal(proto.args[6].kind, TRACE_KIND_IOV);
	assert_int_equal(proto.args[6].len_arg, 7); /* n, 0-based */
	assert_int_equal(proto.args[8].kind, TRACE_KIND_MSG);
}

static void test_annotation_word_as_a_type_behind_a_pointer(void **state)
{
	parse_ok("int f(str *s, int fd)");
	assert_int_equal(proto.args[0].kind, TRACE_KIND_POINTER);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_FD);
}

static void test_annotate_gives_a_parameter_a_kind(void **state)
{
	struct trace_proto_error err;
	parse_ok("int shutdown(int fd, int how)");
	assert_int_equal(trace_proto_annotate(&proto, "how", "flags(shut)", &err), 0);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_FLAGS);
	assert_int_equal(proto.args[1].flags, TRACE_FLAGS_SHUT);
	assert_int_equal(trace_proto_annotate(&proto, NULL, "fd", &err), 0);
	assert_int_equal(proto.ret.kind, TRACE_KIND_FD);
	assert_int_equal(trace_proto_annotate(&proto, "nope", "fd", &err), -EINVAL);
	assert_string_equal(err.message, "shutdown has no parameter 'nope'");
	assert_int_equal(trace_proto_annotate(&proto, "how", "bogus", &err), -EINVAL);
	assert_string_equal(err.message, "'bogus' is not an annotation");
}

/* ----- the socket table ----- */

static void test_every_socket_function_has_a_prototype(void **state)
{
	VI_SYMBOL_TABLE(symbols);
	for (int i = 0; i < VI_SYM_COUNT; i++) {
		struct trace_proto_error err;
		if (trace_socket_proto((enum vi_symbol_id)i, &proto, &err) != 0)
			fail_msg("%s: column %u: %s", symbols[i].prototype, err.col, err.message);
		assert_string_equal(proto.name, symbols[i].name);
	}
}

static void test_socket_table_knows_flags_and_descriptors(void **state)
{
	struct trace_proto_error err;
	assert_int_equal(trace_socket_proto(VI_SYM_socket, &proto, &err), 0);
	assert_int_equal(proto.ret.kind, TRACE_KIND_FD);
	assert_int_equal(proto.args[0].flags, TRACE_FLAGS_AF);
	assert_int_equal(proto.args[1].flags, TRACE_FLAGS_SOCK);
	assert_int_equal(trace_socket_proto(VI_SYM_recvfrom, &proto, &err), 0);
	assert_int_equal(proto.args[3].kind, TRACE_KIND_FLAGS);
	assert_int_equal(proto.args[3].flags, TRACE_FLAGS_MSG);
	assert_int_equal(proto.args[4].kind, TRACE_KIND_SOCKADDR);
	assert_int_equal(trace_socket_proto(VI_SYM_ioctl, &proto, &err), 0);
	assert_true(proto.variadic);
	assert_int_equal(trace_socket_proto(VI_SYM_writev, &proto, &err), 0);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_IOV);
	assert_int_equal(trace_socket_proto(VI_SYM_sendmsg, &proto, &err), 0);
	assert_int_equal(proto.args[1].kind, TRACE_KIND_MSG);
	assert_int_equal(trace_socket_id("connect"), VI_SYM_connect);
	assert_int_equal(trace_socket_id("SSL_read"), -1);
}

/* ----- errors: every kind, with its column ----- */

static void assert_error(const char *text, unsigned col, const char *message)
{
	struct trace_proto_error err = { 0, "" };
	int r = trace_proto_parse(text, strlen(text), &proto, &err);
	if (r != -EINVAL)
		fail_msg("'%s' parsed, expected an error at column %u: %s", text, col, message);
	if (err.col != col || strcmp(err.message, message) != 0)
		fail_msg("'%s':\n  got      %u: %s\n  expected %u: %s", text, err.col, err.message,
			 col, message);
}

static void test_error_unexpected_character(void **state)
{
	assert_error("int f(int x) @", 14, "unexpected character '@'");
	assert_error("int f(int x)\x01", 13, "unexpected byte 0x01");
}

static void test_error_missing_close_parenthesis(void **state)
{
	assert_error("int f(int x", 12, "expected ',' or ')', found end of line");
}

static void test_error_trailing_text(void **state)
{
	assert_error("int f(int x); junk", 15, "unexpected 'junk' after the declaration");
}

static void test_error_unknown_type_by_value(void **state)
{
	assert_error("foo_t f(int x)", 1,
		     "unknown type 'foo_t' (a type the parser does not know can only be passed by "
		     "pointer)");
}

static void test_error_struct_by_value(void **state)
{
	assert_error("int f(int a, struct timeval tv)", 14,
		     "'struct timeval' is passed by value; only pointers to structs and unions can "
		     "be traced");
}

static void test_error_long_double(void **state)
{
	assert_error("int f(long double x)", 7, "long double is not supported");
}

static void test_error_bad_type_words(void **state)
{
	assert_error("int f(unsigned double x)", 7, "invalid combination of type words");
	assert_error("int f(int int x)", 11, "two types in one declaration ('int')");
	assert_error("int f(, int x)", 7, "expected a type, found ','");
}

static void test_error_misplaced_ellipsis(void **state)
{
	assert_error("int f(...)", 7, "'...' needs a parameter before it");
	assert_error("int f(int a, ..., int b)", 17, "'...' must be the last parameter");
}

static void test_error_void_parameter(void **state)
{
	assert_error("int f(void x)", 7, "a parameter cannot be void (write (void) for none)");
}

static void test_error_too_many_parameters(void **state)
{
	assert_error("int f(int a, int b, int c, int d, int e, int f, int g, int h, int i, int j, "
		     "int k, int l, int m)",
		     91, "too many parameters (at most 12)");
}

static void test_error_missing_name_or_parenthesis(void **state)
{
	assert_error("int 3f(int)", 5, "expected the function's name, found '3f'");
	assert_error("int f int x", 7, "expected '(' after the function's name, found 'int'");
	assert_error("int f(int x,)", 13, "expected a parameter after ','");
}

static void test_error_function_pointer_parameter(void **state)
{
	assert_error("int f(int (*cb)(int))", 11,
		     "function pointer parameters are not supported (declare it void *)");
}

static void test_error_buf_length_out_of_range(void **state)
{
	assert_error("int f(buf(9) void *p, size_t n)", 11,
		     "parameter number '9' is out of range (1 to 2)");
}

static void test_error_buf_length_unknown_name(void **state)
{
	assert_error("int f(buf(nosuch) void *p)", 11, "no parameter named 'nosuch'");
}

static void test_error_buf_is_its_own_length(void **state)
{
	assert_error("int f(buf(p) void *p)", 11, "a parameter cannot be its own length");
}

static void test_error_buf_length_not_an_integer(void **state)
{
	assert_error("int f(buf(2) void *p, char *s)", 11, "length parameter 's' is not an integer");
}

static void test_error_buf_ret_without_integer_result(void **state)
{
	assert_error("void f(buf(ret) void *p, size_t n)", 12,
		     "'ret' needs a function that returns an integer");
}

static void test_error_annotation_argument_missing_or_extra(void **state)
{
	assert_error("int f(buf void *p)", 11, "annotation 'buf' needs an argument: buf(...)");
	assert_error("int f(fd(1) int x)", 9, "annotation 'fd' takes no argument");
	assert_error("int f(buf(3 void *p)", 13, "expected ')' to close buf(");
	assert_error("int f(buf(*) void *p)", 11, "expected a parameter number, name or ret in buf(...)");
}

static void test_error_annotation_on_the_wrong_type(void **state)
{
	assert_error("int f(fd char *x)", 7, "'fd' needs an integer");
	assert_error("int f(str int x)", 7, "'str' needs a pointer");
	assert_error("int f(flags(msg) void *x)", 7, "'flags' needs an integer");
}

static void test_error_unknown_flags_kind(void **state)
{
	assert_error("int f(flags(colour) int x)", 13,
		     "unknown flags kind 'colour' (expected msg, sock, af, shut, open, fcntl, epoll "
		     "or level)");
}

static void test_error_annotation_on_the_return_value(void **state)
{
	assert_error("buf(1) int f(int x)", 1, "annotation 'buf' does not apply to a return value");
}

/* ----- files ----- */

struct reports {
	char text[4096];
};

static void collect(void *context, const char *line)
{
	struct reports *r = context;
	strncat(r->text, line, sizeof(r->text) - strlen(r->text) - 2);
	strcat(r->text, "\n");
}

static void test_file_with_comments_and_blank_lines_parses(void **state)
{
	static const char text[] = "# OpenSSL, as viaudit traces it\n"
				   "\n"
				   "int SSL_read(SSL *ssl, buf(ret) void *buf, int num);   // out\n"
				   "  int SSL_write(SSL *ssl, buf(num) const void *buf, int num);\r\n"
				   "int SSL_connect(SSL *ssl) # no newline at the end";
	struct reports r = { "" };
	struct trace_proto *protos;
	size_t count;
	assert_int_equal(trace_proto_parse_file(text, sizeof(text) - 1, "ssl.proto", &protos, &count,
						collect, &r),
			 0);
	assert_string_equal(r.text, "");
	assert_int_equal(count, 3);
	assert_string_equal(protos[0].name, "SSL_read");
	assert_string_equal(protos[1].name, "SSL_write");
	assert_string_equal(protos[2].name, "SSL_connect");
	free(protos);
}

static void test_file_errors_are_reported_as_file_line_col_and_file_yields_nothing(void **state)
{
	static const char text[] = "int good(int fd);\n"
				   "\n"
				   "int bad(struct timeval tv);\n"
				   "int SSL_read(SSL *ssl, buf(ret) void *buf, int num);\n"
				   "    int worse(int x\n";
	struct reports r = { "" };
	struct trace_proto *protos = (void *)1;
	size_t count = 99;
	assert_int_equal(trace_proto_parse_file(text, sizeof(text) - 1, "my.proto", &protos, &count,
						collect, &r),
			 2);
	assert_null(protos);
	assert_int_equal(count, 0);
	assert_string_equal(r.text,
			    "my.proto:3:9: error: 'struct timeval' is passed by value; only pointers "
			    "to structs and unions can be traced\n"
			    "my.proto:5:20: error: expected ',' or ')', found end of line\n");
}

static void test_file_duplicate_declaration_replaces_with_a_warning(void **state)
{
	static const char text[] = "int f(int a);\nlong f(int a, int b);\n";
	struct reports r = { "" };
	struct trace_proto *protos;
	size_t count;
	assert_int_equal(trace_proto_parse_file(text, sizeof(text) - 1, "d.proto", &protos, &count,
						collect, &r),
			 0);
	assert_string_equal(r.text,
			    "d.proto:2:6: warning: 'f' was declared at line 1; this declaration "
			    "replaces it\n");
	assert_int_equal(count, 1);
	assert_int_equal(protos[0].nargs, 2);
	free(protos);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_style_declaration_gives_types_and_kinds),
		cmocka_unit_test(test_output_buffer_length_is_the_return_value),
		cmocka_unit_test(test_sockaddr_takes_its_length_from_the_next_argument),
		cmocka_unit_test(test_descriptor_names_are_fds),
		cmocka_unit_test(test_const_char_pointer_is_a_string),
		cmocka_unit_test(test_integer_types_map_to_libffi_types),
		cmocka_unit_test(test_unnamed_parameters_are_named_by_position),
		cmocka_unit_test(test_void_and_empty_lists_declare_no_parameters),
		cmocka_unit_test(test_array_parameter_is_a_pointer),
		cmocka_unit_test(test_extern_and_semicolon_and_qualifiers_are_accepted),
		cmocka_unit_test(test_variadic_word_is_one_hex_argument),
		cmocka_unit_test(test_buf_ret_annotation_reads_length_from_result),
		cmocka_unit_test(test_buf_annotation_by_name_and_by_number),
		cmocka_unit_test(test_flags_fd_str_hex_sockaddr_iov_msg_annotations),
		cmocka_unit_test(test_annotation_word_as_a_type_behind_a_pointer),
		cmocka_unit_test(test_annotate_gives_a_parameter_a_kind),
		cmocka_unit_test(test_every_socket_function_has_a_prototype),
		cmocka_unit_test(test_socket_table_knows_flags_and_descriptors),
		cmocka_unit_test(test_error_unexpected_character),
		cmocka_unit_test(test_error_missing_close_parenthesis),
		cmocka_unit_test(test_error_trailing_text),
		cmocka_unit_test(test_error_unknown_type_by_value),
		cmocka_unit_test(test_error_struct_by_value),
		cmocka_unit_test(test_error_long_double),
		cmocka_unit_test(test_error_bad_type_words),
		cmocka_unit_test(test_error_misplaced_ellipsis),
		cmocka_unit_test(test_error_void_parameter),
		cmocka_unit_test(test_error_too_many_parameters),
		cmocka_unit_test(test_error_missing_name_or_parenthesis),
		cmocka_unit_test(test_error_function_pointer_parameter),
		cmocka_unit_test(test_error_buf_length_out_of_range),
		cmocka_unit_test(test_error_buf_length_unknown_name),
		cmocka_unit_test(test_error_buf_is_its_own_length),
		cmocka_unit_test(test_error_buf_length_not_an_integer),
		cmocka_unit_test(test_error_buf_ret_without_integer_result),
		cmocka_unit_test(test_error_annotation_argument_missing_or_extra),
		cmocka_unit_test(test_error_annotation_on_the_wrong_type),
		cmocka_unit_test(test_error_unknown_flags_kind),
		cmocka_unit_test(test_error_annotation_on_the_return_value),
		cmocka_unit_test(test_file_with_comments_and_blank_lines_parses),
		cmocka_unit_test(test_file_errors_are_reported_as_file_line_col_and_file_yields_nothing),
		cmocka_unit_test(test_file_duplicate_declaration_replaces_with_a_warning),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
