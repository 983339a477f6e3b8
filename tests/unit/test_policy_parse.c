/* Unit tests of the policy parser: every construct, every kind of error and warning, and files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_test.h"

#ifndef VI_POLICY_DATA_DIR
#error "VI_POLICY_DATA_DIR must name tests/data/policies"
#endif
#ifndef VI_EXAMPLE_POLICY
#error "VI_EXAMPLE_POLICY must name contrib/policies/example.policy"
#endif

/* ----- allocation failures: the library's malloc, calloc and realloc go through these ----- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

/* -1: never fail; otherwise how many more allocations succeed before one fails. */
static long allocations_left = -1;

static bool allocation_fails(void)
{
	if (allocations_left < 0)
		return false;
	if (allocations_left == 0)
		return true;
	allocations_left--;
	return false;
}

void *__wrap_malloc(size_t size)
{
	return allocation_fails() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return allocation_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return allocation_fails() ? NULL : __real_realloc(p, size);
}

/* ----- layout ----- */

static void test_empty_text_gives_empty_policy(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("");
	assert_int_equal(p->nroutes, 0);
	assert_int_equal(p->ntraces, 0);
	assert_int_equal(p->nerrors, 0);
	assert_string_equal(p->file, "t.policy");
	vi_policy_free(p);
}

static void test_settings_have_defaults(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("");
	assert_int_equal(p->settings.ring_size, 1 << 20);
	assert_int_equal(p->settings.spin_us, -1);
	assert_false(p->settings.strict);
	assert_int_equal(p->settings.log, 0);
	assert_false(p->settings.allow_other_uids);
	vi_policy_free(p);
}

static void test_comments_and_blank_lines_are_ignored(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("# a comment\n\n   \n\t# indented comment\n"
						      "route main tcp *:80 shm\n");
	assert_int_equal(p->nroutes, 1);
	assert_int_equal(p->routes[0].pos.line, 5);
	vi_policy_free(p);
}

static void test_comment_after_words_is_ignored(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:80 shm # shm here\n"
						      "set strict yes#no space needed\n");
	assert_int_equal(p->nroutes, 1);
	assert_true(p->settings.strict);
	vi_policy_free(p);
}

static void test_tabs_separate_words(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("\troute\tmain\t\ttcp *:80\tshm\n");
	assert_int_equal(p->nroutes, 1);
	assert_int_equal(p->routes[0].pos.col, 2);
	assert_int_equal(p->routes[0].caller.pos.col, 8);
	vi_policy_free(p);
}

static void test_crlf_line_endings_are_accepted(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set log routes\r\nroute main tcp *:80 shm\r\n"
						      "route * * * kernel\r\n");
	assert_int_equal(p->nroutes, 2);
	assert_int_equal(p->routes[0].transport, VI_TRANSPORT_SHM);
	assert_int_equal(p->settings.log, VI_LOG_ROUTES);
	vi_policy_free(p);
}

static void test_last_line_without_newline_is_parsed(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:80 shm\nroute * tcp * tcp");
	assert_int_equal(p->nroutes, 2);
	assert_int_equal(p->routes[1].transport, VI_TRANSPORT_TCP);
	assert_int_equal(p->routes[1].pos.line, 2);
	vi_policy_free(p);
}

static void test_very_long_line_is_parsed(void **state)
{
	size_t pad = 200000;
	char *text = malloc(pad + 64);
	assert_non_null(text);
	memset(text, ' ', pad);
	strcpy(text + pad, "route main tcp *:80 shmm\n");
	struct vi_policy *p = policy_test_parse(text);
	assert_int_equal(p->nerrors, 1);
	assert_int_equal(p->diagnostics[0].pos.col, pad + 21);
	vi_policy_free(p);
	free(text);
}

/* ----- route ----- */

static void test_route_records_every_field(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.0/8:6379 shm\n");
	const struct vi_route *r = &p->routes[0];
	assert_string_equal(r->pos.file, "t.policy");
	assert_int_equal(r->pos.line, 1);
	assert_int_equal(r->pos.col, 1);
	assert_string_equal(r->program, "*");
	assert_int_equal(r->caller.kind, VI_CALLER_MAIN);
	assert_null(r->caller.pattern);
	assert_int_equal(r->proto, VI_PROTO_TCP);
	assert_false(r->endpoint.any_host);
	assert_int_equal(r->endpoint.family, AF_INET);
	assert_memory_equal(r->endpoint.addr, "\x7f\x00\x00\x00", 4);
	assert_int_equal(r->endpoint.prefix, 8);
	assert_int_equal(r->endpoint.port_lo, 6379);
	assert_int_equal(r->endpoint.port_hi, 6379);
	assert_int_equal(r->transport, VI_TRANSPORT_SHM);
	assert_int_equal(r->fallback, VI_FALLBACK_TCP);
	assert_int_equal(r->reconnect_ms, 0);
	vi_policy_free(p);
}

static void test_route_caller_kinds(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main * * tcp\n"
						      "route * * *:1 tcp\n"
						      "route libpq.so.* * * tcp\n"
						      "route /opt/app/lib/*.so * * tcp\n");
	assert_int_equal(p->routes[0].caller.kind, VI_CALLER_MAIN);
	assert_int_equal(p->routes[1].caller.kind, VI_CALLER_ANY);
	assert_null(p->routes[1].caller.pattern);
	assert_int_equal(p->routes[2].caller.kind, VI_CALLER_SONAME_GLOB);
	assert_string_equal(p->routes[2].caller.pattern, "libpq.so.*");
	assert_int_equal(p->routes[3].caller.kind, VI_CALLER_PATH_GLOB);
	assert_string_equal(p->routes[3].caller.pattern, "/opt/app/lib/*.so");
	assert_int_equal(p->routes[3].caller.pos.line, 4);
	assert_int_equal(p->routes[3].caller.pos.col, 7);
	vi_policy_free(p);
}

static void test_route_protocols(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp * tcp\nroute main tcp4 * tcp\n"
						      "route main tcp6 * tcp\nroute main udp * tcp\n"
						      "route main * * tcp\n");
	assert_int_equal(p->routes[0].proto, VI_PROTO_TCP);
	assert_int_equal(p->routes[1].proto, VI_PROTO_TCP4);
	assert_int_equal(p->routes[2].proto, VI_PROTO_TCP6);
	assert_int_equal(p->routes[3].proto, VI_PROTO_UDP);
	assert_int_equal(p->routes[4].proto, VI_PROTO_ANY);
	vi_policy_free(p);
}

static void test_route_transports(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:1 shm\nroute main tcp *:2 verbs\n"
						      "route main tcp *:3 auto\nroute main tcp *:4 tcp\n"
						      "route main tcp *:5 kernel\n");
	assert_int_equal(p->routes[0].transport, VI_TRANSPORT_SHM);
	assert_int_equal(p->routes[1].transport, VI_TRANSPORT_VERBS);
	assert_int_equal(p->routes[2].transport, VI_TRANSPORT_AUTO);
	assert_int_equal(p->routes[3].transport, VI_TRANSPORT_TCP);
	assert_int_equal(p->routes[4].transport, VI_TRANSPORT_KERNEL);
	vi_policy_free(p);
}

static void test_endpoint_star_is_every_host_and_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp * shm\nroute main tcp *:* shm\n");
	for (int i = 0; i < 2; i++) {
		assert_true(p->routes[i].endpoint.any_host);
		assert_int_equal(p->routes[i].endpoint.port_lo, 0);
		assert_int_equal(p->routes[i].endpoint.port_hi, 65535);
	}
	vi_policy_free(p);
}

static void test_endpoint_star_host_with_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:5432 shm\n");
	assert_true(p->routes[0].endpoint.any_host);
	assert_int_equal(p->routes[0].endpoint.port_lo, 5432);
	assert_int_equal(p->routes[0].endpoint.port_hi, 5432);
	vi_policy_free(p);
}

static void test_route_with_ipv4_prefix_and_port_range(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 10.0.0.0/8:8000-8099 shm\n");
	const struct vi_endpoint *ep = &p->routes[0].endpoint;
	assert_int_equal(ep->family, AF_INET);
	assert_memory_equal(ep->addr, "\x0a\x00\x00\x00", 4);
	assert_int_equal(ep->prefix, 8);
	assert_int_equal(ep->port_lo, 8000);
	assert_int_equal(ep->port_hi, 8099);
	vi_policy_free(p);
}

static void test_ipv4_host_without_prefix_or_port_is_one_address_every_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 192.168.1.20 shm\n");
	const struct vi_endpoint *ep = &p->routes[0].endpoint;
	assert_memory_equal(ep->addr, "\xc0\xa8\x01\x14", 4);
	assert_int_equal(ep->prefix, 32);
	assert_int_equal(ep->port_lo, 0);
	assert_int_equal(ep->port_hi, 65535);
	vi_policy_free(p);
}

static void test_endpoint_port_star_is_every_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.0/8:* shm\n");
	assert_int_equal(p->routes[0].endpoint.port_lo, 0);
	assert_int_equal(p->routes[0].endpoint.port_hi, 65535);
	vi_policy_free(p);
}

static void test_route_with_ipv6_prefix_and_port_range(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp6 [fd00::]/8:8000-8099 auto\n");
	const struct vi_endpoint *ep = &p->routes[0].endpoint;
	assert_int_equal(ep->family, AF_INET6);
	assert_memory_equal(ep->addr, "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			    16);
	assert_int_equal(ep->prefix, 8);
	assert_int_equal(ep->port_lo, 8000);
	assert_int_equal(ep->port_hi, 8099);
	vi_policy_free(p);
}

static void test_ipv6_loopback_with_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp [::1]:6379 shm\n");
	const struct vi_endpoint *ep = &p->routes[0].endpoint;
	assert_memory_equal(ep->addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	assert_int_equal(ep->prefix, 128);
	assert_int_equal(ep->port_lo, 6379);
	vi_policy_free(p);
}

static void test_ipv6_prefix_without_port(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp [fe80::]/10 shm\n");
	const struct vi_endpoint *ep = &p->routes[0].endpoint;
	assert_memory_equal(ep->addr, "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(ep->prefix, 10);
	assert_int_equal(ep->port_hi, 65535);
	vi_policy_free(p);
}

static void test_ipv6_full_form_and_dotted_tail(void **state)
{
	struct vi_policy *p = policy_test_parse_clean(
		"route main tcp [2001:db8:0:1:2:3:4:5]:1 shm\n"
		"route main tcp [::ffff:127.0.0.1]:2 shm\n"
		"route main tcp [1:2:3:4:5:6:7::]:3 shm\n"
		"route main tcp [::]/0:4 shm\n");
	assert_memory_equal(p->routes[0].endpoint.addr,
			    "\x20\x01\x0d\xb8\x00\x00\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05", 16);
	assert_memory_equal(p->routes[1].endpoint.addr,
			    "\0\0\0\0\0\0\0\0\0\0\xff\xff\x7f\x00\x00\x01", 16);
	assert_memory_equal(p->routes[2].endpoint.addr,
			    "\0\x01\0\x02\0\x03\0\x04\0\x05\0\x06\0\x07\0\0", 16);
	assert_int_equal(p->routes[3].endpoint.prefix, 0);
	vi_policy_free(p);
}

static void test_route_options_fallback_and_reconnect(void **state)
{
	struct vi_policy *p = policy_test_parse_clean(
		"route main tcp *:80 shm fallback=error reconnect=30s\n"
		"route main tcp *:81 shm reconnect=2m fallback=tcp\n");
	assert_int_equal(p->routes[0].fallback, VI_FALLBACK_ERROR);
	assert_int_equal(p->routes[0].reconnect_ms, 30000);
	assert_int_equal(p->routes[1].fallback, VI_FALLBACK_TCP);
	assert_int_equal(p->routes[1].reconnect_ms, 120000);
	vi_policy_free(p);
}

static void test_reconnect_units_and_bare_seconds(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:1 shm reconnect=500ms\n"
						      "route main tcp *:2 shm reconnect=7\n"
						      "route main tcp *:3 shm reconnect=0\n"
						      "route main tcp *:4 shm reconnect=1440m\n");
	assert_int_equal(p->routes[0].reconnect_ms, 500);
	assert_int_equal(p->routes[1].reconnect_ms, 7000);
	assert_int_equal(p->routes[2].reconnect_ms, 0);
	assert_int_equal(p->routes[3].reconnect_ms, 86400000);
	vi_policy_free(p);
}

/* ----- program, trace, set ----- */

static void test_program_scopes_the_rules_after_it(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:1 shm\n"
						      "program redis-*\n"
						      "route main tcp *:2 shm\n"
						      "trace main connect\n"
						      "program *\n"
						      "route main tcp *:3 shm\n");
	assert_string_equal(p->routes[0].program, "*");
	assert_string_equal(p->routes[1].program, "redis-*");
	assert_string_equal(p->traces[0].program, "redis-*");
	assert_string_equal(p->routes[2].program, "*");
	vi_policy_free(p);
}

static void test_trace_records_symbols_and_their_columns(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("trace libpq.so.* connect,send,recv\n");
	const struct vi_trace *t = &p->traces[0];
	assert_int_equal(t->caller.kind, VI_CALLER_SONAME_GLOB);
	assert_int_equal(t->nsymbols, 3);
	assert_string_equal(t->symbols[0], "connect");
	assert_string_equal(t->symbols[1], "send");
	assert_string_equal(t->symbols[2], "recv");
	assert_int_equal(t->symbol_pos[0].col, 18);
	assert_int_equal(t->symbol_pos[1].col, 26);
	assert_int_equal(t->symbol_pos[2].col, 31);
	assert_int_equal(t->pos.line, 1);
	vi_policy_free(p);
}

static void test_set_ring_size_accepts_suffixes(void **state)
{
	static const struct {
		const char *text;
		size_t size;
	} cases[] = {
		{ "set ring_size 4K\n", 4096 },     { "set ring_size 64k\n", 65536 },
		{ "set ring_size 2M\n", 2 << 20 },  { "set ring_size 1G\n", 1 << 30 },
		{ "set ring_size 8192\n", 8192 },   { "set ring_size 1m\n", 1 << 20 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vi_policy *p = policy_test_parse_clean(cases[i].text);
		assert_int_equal(p->settings.ring_size, cases[i].size);
		vi_policy_free(p);
	}
}

static void test_set_spin_us_number_or_auto(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set spin_us 50\n");
	assert_int_equal(p->settings.spin_us, 50);
	vi_policy_free(p);
	p = policy_test_parse_clean("set spin_us 0\n");
	assert_int_equal(p->settings.spin_us, 0);
	vi_policy_free(p);
	p = policy_test_parse_clean("set spin_us auto\n");
	assert_int_equal(p->settings.spin_us, -1);
	vi_policy_free(p);
}

static void test_set_strict_words(void **state)
{
	static const char *const yes[] = { "yes", "true", "on" };
	static const char *const no[] = { "no", "false", "off" };
	char text[64];
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "set strict %s\n", yes[i]);
		struct vi_policy *p = policy_test_parse_clean(text);
		assert_true(p->settings.strict);
		vi_policy_free(p);
		snprintf(text, sizeof(text), "set strict %s\n", no[i]);
		p = policy_test_parse_clean(text);
		assert_false(p->settings.strict);
		vi_policy_free(p);
	}
}

static void test_set_log_takes_a_list(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set log routes,conns,calls,debug\n");
	assert_int_equal(p->settings.log, VI_LOG_ROUTES | VI_LOG_CONNS | VI_LOG_CALLS | VI_LOG_DEBUG);
	vi_policy_free(p);
	p = policy_test_parse_clean("set log conns\n");
	assert_int_equal(p->settings.log, VI_LOG_CONNS);
	vi_policy_free(p);
}

static void test_set_log_trace(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set log routes,trace\n");
	assert_int_equal(p->settings.log, VI_LOG_ROUTES | VI_LOG_TRACE);
	vi_policy_free(p);
}

static void test_set_prototypes_keeps_the_path_as_written(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set prototypes ssl.proto\n");
	assert_string_equal(p->settings.prototypes, "ssl.proto");
	vi_policy_free(p);
	p = policy_test_parse_clean("route main tcp *:80 shm\n");
	assert_null(p->settings.prototypes);
	vi_policy_free(p);
}

static void test_set_door_peers(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("set door_peers any\n");
	assert_true(p->settings.allow_other_uids);
	vi_policy_free(p);
	p = policy_test_parse_clean("set door_peers same-uid\n");
	assert_false(p->settings.allow_other_uids);
	vi_policy_free(p);
}

/* ----- errors: words ----- */

static void test_unknown_keyword(void **state)
{
	assert_diagnostics("  rout main tcp * shm\n",
			   "t.policy:1:3: error: unknown keyword 'rout' (expected route, trace, "
			   "program or set)\n");
}

static void test_error_column_points_at_transport(void **state)
{
	assert_diagnostics("route main tcp 127.0.0.1:6379 shmm\n",
			   "t.policy:1:31: error: unknown transport 'shmm' (expected shm, verbs, "
			   "auto, tcp or kernel)\n");
}

static void test_unknown_protocol(void **state)
{
	assert_diagnostics("route main tcpx *:80 shm\n",
			   "t.policy:1:12: error: unknown protocol 'tcpx' (expected tcp, tcp4, tcp6, "
			   "udp or *)\n");
}

static void test_one_line_reports_each_bad_word(void **state)
{
	assert_diagnostics("route main tcpx *:80 shmm\n",
			   "t.policy:1:12: error: unknown protocol 'tcpx' (expected tcp, tcp4, tcp6, "
			   "udp or *)\n"
			   "t.policy:1:22: error: unknown transport 'shmm' (expected shm, verbs, "
			   "auto, tcp or kernel)\n");
}

static void test_missing_endpoint_points_after_last_word(void **state)
{
	assert_diagnostics("route main tcp\n",
			   "t.policy:1:15: error: missing ENDPOINT (route CALLER PROTO ENDPOINT "
			   "TRANSPORT [OPTION=VALUE...])\n");
}

static void test_route_alone_is_missing_caller(void **state)
{
	assert_diagnostics("route\n", "t.policy:1:6: error: missing CALLER (route CALLER PROTO "
				      "ENDPOINT TRANSPORT [OPTION=VALUE...])\n");
}

static void test_missing_transport(void **state)
{
	assert_diagnostics("route main tcp *:80   # shm\n",
			   "t.policy:1:20: error: missing TRANSPORT (route CALLER PROTO ENDPOINT "
			   "TRANSPORT [OPTION=VALUE...])\n");
}

static void test_port_out_of_range(void **state)
{
	assert_diagnostics("route main tcp 127.0.0.1:70000 shm\n",
			   "t.policy:1:26: error: port 70000 out of range (0-65535)\n");
}

static void test_port_range_end_out_of_range(void **state)
{
	assert_diagnostics("route main tcp *:1-65536 shm\n",
			   "t.policy:1:20: error: port 65536 out of range (0-65535)\n");
}

static void test_reversed_port_range(void **state)
{
	assert_diagnostics("route main tcp *:9000-8000 shm\n",
			   "t.policy:1:18: error: port range 9000-8000 is reversed (the lower port "
			   "comes first)\n");
}

static void test_missing_port_after_colon(void **state)
{
	assert_diagnostics("route main tcp 10.0.0.1: shm\n",
			   "t.policy:1:24: error: missing port after ':'\n");
}

static void test_port_name_is_an_error(void **state)
{
	assert_diagnostics("route main tcp *:http shm\n",
			   "t.policy:1:18: error: bad port 'http' (expected a port, a range A-B, "
			   "or *)\n");
}

static void test_half_open_port_range_is_an_error(void **state)
{
	assert_diagnostics("route main tcp *:80- shm\n",
			   "t.policy:1:21: error: bad port range '80-' (expected A-B)\n");
}

static void test_prefix_too_long_for_ipv4(void **state)
{
	assert_diagnostics("route main tcp 10.0.0.0/33:80 shm\n",
			   "t.policy:1:24: error: prefix /33 too long for IPv4\n");
}

static void test_prefix_too_long_for_ipv6(void **state)
{
	assert_diagnostics("route main tcp [::1]/129 shm\n",
			   "t.policy:1:21: error: prefix /129 too long for IPv6\n");
}

static void test_missing_prefix_length(void **state)
{
	assert_diagnostics("route main tcp 10.0.0.0/:80 shm\n",
			   "t.policy:1:24: error: missing prefix length after '/'\n");
}

static void test_bad_prefix(void **state)
{
	assert_diagnostics("route main tcp 10.0.0.0/8x shm\n",
			   "t.policy:1:24: error: bad prefix '/8x'\n");
}

static void test_ipv6_prefix_inside_brackets_is_an_error(void **state)
{
	assert_diagnostics("route main tcp [fe80::/10] shm\n",
			   "t.policy:1:23: error: the prefix goes after the bracket: write "
			   "[fe80::]/10\n");
}

static void test_ipv6_without_brackets_is_an_error(void **state)
{
	assert_diagnostics("route main tcp ::1:6379 shm\n",
			   "t.policy:1:16: error: an IPv6 address goes in brackets, as in "
			   "[::1]:6379 or [fe80::]/10\n");
}

static void test_bad_ipv4_address(void **state)
{
	assert_diagnostics("route main tcp 256.0.0.1:80 shm\nroute main tcp 10.0.0:80 shm\n",
			   "t.policy:1:16: error: bad IPv4 address '256.0.0.1'\n"
			   "t.policy:2:16: error: bad IPv4 address '10.0.0'\n");
}

static void test_host_name_is_an_error(void **state)
{
	assert_diagnostics("route main tcp localhost:6379 shm\n",
			   "t.policy:1:16: error: bad host 'localhost' (expected an IPv4 address, "
			   "[IPv6 address] or *)\n");
}

static void test_bad_ipv6_address(void **state)
{
	assert_diagnostics("route main tcp [1::2::3]:80 shm\nroute main tcp [1:2:3]:80 shm\n"
			   "route main tcp [12345::]:80 shm\nroute main tcp [::g]:80 shm\n",
			   "t.policy:1:17: error: bad IPv6 address '1::2::3'\n"
			   "t.policy:2:17: error: bad IPv6 address '1:2:3'\n"
			   "t.policy:3:17: error: bad IPv6 address '12345::'\n"
			   "t.policy:4:17: error: bad IPv6 address '::g'\n");
}

static void test_missing_closing_bracket(void **state)
{
	assert_diagnostics("route main tcp [::1:80 shm\n",
			   "t.policy:1:16: error: missing ']' after the IPv6 address in '[::1:80'\n");
}

static void test_prefix_on_star_host_is_an_error(void **state)
{
	assert_diagnostics("route main tcp */8 shm\n",
			   "t.policy:1:17: error: a prefix needs an address ('*' is every host)\n");
}

static void test_text_after_endpoint_is_an_error(void **state)
{
	assert_diagnostics("route main tcp [::1]x shm\n",
			   "t.policy:1:21: error: unexpected 'x' in ENDPOINT (expected "
			   "HOST[/PREFIX][:PORTS])\n");
}

static void test_unknown_option(void **state)
{
	assert_diagnostics("route main tcp *:80 shm retry=3\n",
			   "t.policy:1:25: error: unknown option 'retry' (expected fallback or "
			   "reconnect)\n");
}

static void test_word_after_transport_is_trailing_text(void **state)
{
	assert_diagnostics("route main tcp *:80 shm fast\n",
			   "t.policy:1:25: error: trailing text 'fast' (options are "
			   "fallback=tcp|error and reconnect=DURATION)\n");
}

static void test_unknown_fallback(void **state)
{
	assert_diagnostics("route main tcp *:80 shm fallback=kernel\n",
			   "t.policy:1:34: error: unknown fallback 'kernel' (expected tcp or error)\n");
}

static void test_bad_duration(void **state)
{
	assert_diagnostics("route main tcp *:80 shm reconnect=5h\n",
			   "t.policy:1:35: error: bad duration '5h' (expected a number with ms, s "
			   "or m, as in 500ms, 30s or 2m; a bare number is seconds)\n");
}

static void test_duration_longer_than_a_day(void **state)
{
	assert_diagnostics("route main tcp *:80 shm reconnect=1441m\n",
			   "t.policy:1:35: error: reconnect=1441m is too long (at most 1440m, one "
			   "day)\n");
}

static void test_option_given_twice(void **state)
{
	assert_diagnostics("route main tcp *:80 shm fallback=tcp fallback=error\n",
			   "t.policy:1:38: error: option 'fallback' given twice\n");
}

static void test_soname_glob_with_slash_is_an_error(void **state)
{
	assert_diagnostics("route lib/x.so tcp * shm\n",
			   "t.policy:1:10: error: CALLER 'lib/x.so' has a '/' but does not start "
			   "with one (a path glob is absolute; a soname glob has no '/')\n");
}

static void test_unclosed_bracket_in_glob(void **state)
{
	assert_diagnostics("route libpq[.so tcp * shm\n",
			   "t.policy:1:12: error: unclosed '[' in soname glob 'libpq[.so'\n");
}

static void test_glob_ending_in_backslash(void **state)
{
	assert_diagnostics("route /opt/x\\ tcp * shm\n",
			   "t.policy:1:13: error: path glob '/opt/x\\' ends in a lone '\\'\n");
}

static void test_trace_without_symbols(void **state)
{
	assert_diagnostics("trace main\n",
			   "t.policy:1:11: error: missing SYMBOL list (trace CALLER "
			   "SYMBOL[,SYMBOL...])\n");
}

static void test_trace_empty_symbol(void **state)
{
	assert_diagnostics("trace main connect,,send\n",
			   "t.policy:1:20: error: empty symbol name in 'connect,,send'\n");
}

static void test_trace_bad_symbol_name(void **state)
{
	assert_diagnostics("trace main connect,se-nd\n",
			   "t.policy:1:20: error: 'se-nd' is not a symbol name\n");
}

static void test_trace_space_after_comma(void **state)
{
	assert_diagnostics("trace main connect, send\n",
			   "t.policy:1:20: error: empty symbol name in 'connect,'\n"
			   "t.policy:1:21: error: trailing text 'send' (separate symbols with ',' and "
			   "no spaces)\n");
}

static void test_program_without_glob(void **state)
{
	assert_diagnostics("program\n", "t.policy:1:8: error: missing GLOB (program GLOB)\n");
}

static void test_program_glob_with_slash(void **state)
{
	assert_diagnostics("program bin/redis\n",
			   "t.policy:1:12: error: program glob 'bin/redis' has a '/' but is matched "
			   "against the program's basename\n");
}

static void test_program_trailing_text(void **state)
{
	assert_diagnostics("program redis-* x\n", "t.policy:1:17: error: trailing text 'x'\n");
}

static void test_set_unknown_key(void **state)
{
	assert_diagnostics("set ringsize 1M\n",
			   "t.policy:1:5: error: unknown setting 'ringsize' (expected ring_size, "
			   "spin_us, strict, log, door_peers or prototypes)\n");
}

static void test_set_without_key_or_value(void **state)
{
	assert_diagnostics("set\nset ring_size\n",
			   "t.policy:1:4: error: missing KEY (set KEY VALUE)\n"
			   "t.policy:2:14: error: missing VALUE for 'ring_size'\n");
}

static void test_ring_size_not_a_power_of_two(void **state)
{
	assert_diagnostics("set ring_size 3M\n",
			   "t.policy:1:15: error: ring_size 3M is not a power of two\n");
}

static void test_ring_size_limits(void **state)
{
	assert_diagnostics("set ring_size 2K\nset ring_size 2G\nset ring_size 0\n",
			   "t.policy:1:15: error: ring_size 2K is below the minimum 4K\n"
			   "t.policy:2:15: error: ring_size 2G is above the maximum 1G\n"
			   "t.policy:3:15: error: ring_size 0 is below the minimum 4K\n");
}

static void test_ring_size_bad_suffix(void **state)
{
	assert_diagnostics("set ring_size 1T\nset ring_size 1MiB\n",
			   "t.policy:1:15: error: bad size '1T' (expected a number with K, M or G, "
			   "as in 64K or 1M)\n"
			   "t.policy:2:15: error: bad size '1MiB' (expected a number with K, M or G, "
			   "as in 64K or 1M)\n");
}

static void test_ring_size_huge_number_is_above_maximum(void **state)
{
	assert_diagnostics("set ring_size 99999999999999999999999G\n",
			   "t.policy:1:15: error: ring_size 99999999999999999999999G is above the "
			   "maximum 1G\n");
}

static void test_spin_us_negative(void **state)
{
	assert_diagnostics("set spin_us -5\n",
			   "t.policy:1:13: error: bad spin_us '-5' (expected a whole number of "
			   "microseconds >= 0, or auto)\n");
}

static void test_spin_us_too_large(void **state)
{
	assert_diagnostics("set spin_us 2000000\n",
			   "t.policy:1:13: error: spin_us 2000000 is too large (at most 1000000)\n");
}

static void test_strict_bad_word(void **state)
{
	assert_diagnostics("set strict maybe\n",
			   "t.policy:1:12: error: bad strict 'maybe' (expected yes, no, true, false, "
			   "on or off)\n");
}

static void test_log_unknown_category(void **state)
{
	assert_diagnostics("set log routes,bogus\n",
			   "t.policy:1:16: error: unknown log category 'bogus' (expected routes, "
			   "conns, calls, debug or trace)\n");
}

static void test_door_peers_bad_word(void **state)
{
	assert_diagnostics("set door_peers everyone\n",
			   "t.policy:1:16: error: bad door_peers 'everyone' (expected same-uid or "
			   "any)\n");
}

static void test_set_trailing_text(void **state)
{
	assert_diagnostics("set strict yes no\n", "t.policy:1:16: error: trailing text 'no'\n");
}

static void test_bad_setting_keeps_the_default(void **state)
{
	struct vi_policy *p = policy_test_parse("set ring_size 3M\n");
	assert_int_equal(p->settings.ring_size, 1 << 20);
	vi_policy_free(p);
}

/* ----- errors: the file as a whole ----- */

static void test_nul_byte_is_an_error(void **state)
{
	static const char text[] = "route main\0 tcp * shm\nroute main tcp * shm\n";
	struct vi_policy *p = vi_policy_parse(text, sizeof(text) - 1, "t.policy");
	assert_non_null(p);
	char *d = policy_test_diagnostics(p);
	assert_string_equal(d, "t.policy:1:11: error: invalid byte 0x00\n");
	assert_int_equal(p->nroutes, 1);
	assert_int_equal(p->routes[0].pos.line, 2);
	free(d);
	vi_policy_free(p);
}

static void test_error_reports_every_bad_line(void **state)
{
	assert_diagnostics("set ring_size 1M        # fine\n"
			   "route main tcp *:99999 shm\n"
			   "# comment\n"
			   "route main tcp * shmm\n"
			   "program\n"
			   "route * * * kernel\n",
			   "t.policy:2:18: error: port 99999 out of range (0-65535)\n"
			   "t.policy:4:18: error: unknown transport 'shmm' (expected shm, verbs, auto, "
			   "tcp or kernel)\n"
			   "t.policy:5:8: error: missing GLOB (program GLOB)\n");
}

static void test_bad_rule_is_not_kept(void **state)
{
	struct vi_policy *p = policy_test_parse("route main tcp *:1 shm\nroute main tcp *:2 shmm\n"
						"route main tcp *:3 shm\n");
	assert_int_equal(p->nerrors, 1);
	assert_int_equal(p->nroutes, 2);
	assert_int_equal(p->routes[1].endpoint.port_lo, 3);
	vi_policy_free(p);
}

static void test_long_word_is_cut_in_message(void **state)
{
	char text[200];
	memset(text, 'a', 100);
	strcpy(text + 100, "\n");
	assert_diagnostics(text, "t.policy:1:1: error: unknown keyword "
				 "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (expected route, "
				 "trace, program or set)\n");
}

static void test_bytes_above_ascii_are_escaped_in_message(void **state)
{
	assert_diagnostics("\xc3\xa9t\xc3\xa9\n",
			   "t.policy:1:1: error: unknown keyword '\\xc3\\xa9t\\xc3\\xa9' (expected "
			   "route, trace, program or set)\n");
}

/* ----- warnings ----- */

static void test_unknown_trace_symbol_warns_and_is_kept(void **state)
{
	struct vi_policy *p = policy_test_parse("trace main connect,foo\n");
	char *d = policy_test_diagnostics(p);
	assert_string_equal(d, "t.policy:1:20: warning: symbol 'foo' is not a known socket "
			       "function; it needs a prototype to be traced\n");
	assert_int_equal(p->nerrors, 0);
	assert_int_equal(p->ntraces, 1);
	assert_int_equal(p->traces[0].nsymbols, 2);
	assert_string_equal(p->traces[0].symbols[1], "foo");
	free(d);
	vi_policy_free(p);
}

static void test_fortified_names_are_known_symbols(void **state)
{
	vi_policy_free(policy_test_parse_clean("trace * __recv_chk,fcntl64,epoll_pwait\n"));
}

static void test_duplicate_setting_warns_and_last_wins(void **state)
{
	struct vi_policy *p = policy_test_parse("set ring_size 1M\nset ring_size 2M\n");
	char *d = policy_test_diagnostics(p);
	assert_string_equal(d, "t.policy:2:5: warning: duplicate setting 'ring_size'; this "
			       "replaces the one at t.policy:1\n");
	assert_int_equal(p->nerrors, 0);
	assert_int_equal(p->settings.ring_size, 2 << 20);
	free(d);
	vi_policy_free(p);
}

static void test_route_after_match_everything_is_unreachable(void **state)
{
	assert_diagnostics("route * * *:* kernel\nroute main tcp *:80 shm\n",
			   "t.policy:2:1: warning: unreachable: rule at t.policy:1 matches "
			   "everything first\n");
}

static void test_match_everything_for_every_program_shadows_later_scopes(void **state)
{
	assert_diagnostics("route * * * kernel\nprogram redis-*\nroute main tcp * shm\n",
			   "t.policy:3:1: warning: unreachable: rule at t.policy:1 matches "
			   "everything first\n");
}

static void test_match_everything_in_a_scope_shadows_its_own_rules(void **state)
{
	assert_diagnostics("program a\nroute * * * kernel\n\troute main tcp * shm\n",
			   "t.policy:3:2: warning: unreachable: rule at t.policy:2 matches "
			   "everything first\n");
}

static void test_program_line_ends_a_match_everything_scope(void **state)
{
	vi_policy_free(policy_test_parse_clean("program a\nroute * * * kernel\n"
					       "program b\nroute main tcp * shm\n"));
}

static void test_narrow_rule_does_not_shadow(void **state)
{
	vi_policy_free(policy_test_parse_clean("route * * *:80 kernel\nroute main * * kernel\n"
					       "route * tcp * kernel\nroute main tcp * shm\n"));
}

/* ----- diagnostics output ----- */

static void test_diagnostic_format_cuts_a_long_line_and_keeps_its_newline(void **state)
{
	struct vi_diagnostic d = {
		.pos = { "f.policy", 3, 7 },
		.severity = VI_SEVERITY_ERROR,
		.message = "bad",
	};
	char buf[10];
	size_t len = vi_diagnostic_format(&d, buf, sizeof(buf));
	assert_int_equal(len, 9);
	assert_string_equal(buf, "f.policy\n");
}

static void test_diagnostic_format_of_unreadable_file_has_no_line(void **state)
{
	struct vi_diagnostic d = {
		.pos = { "f.policy", 0, 0 },
		.severity = VI_SEVERITY_ERROR,
		.message = "cannot read policy: Is a directory",
	};
	char buf[128];
	size_t len = vi_diagnostic_format(&d, buf, sizeof(buf));
	assert_string_equal(buf, "f.policy: error: cannot read policy: Is a directory\n");
	assert_int_equal(len, strlen(buf));
}

static void test_print_diagnostics_writes_a_long_file_name_whole(void **state)
{
	char name[3000];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	struct vi_policy *p = vi_policy_parse("bogus\n", 6, name);
	assert_non_null(p);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	vi_policy_print_diagnostics(p, fds[1]);
	close(fds[1]);
	static char buf[8192];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	buf[got] = '\0';
	assert_int_equal(got, strlen(name) + strlen(":1:1: error: unknown keyword 'bogus' (expected "
						    "route, trace, program or set)\n"));
	assert_memory_equal(buf, name, strlen(name));
	assert_int_equal(buf[got - 1], '\n');
	vi_policy_free(p);
}

static void test_print_diagnostics_writes_every_line(void **state)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	struct vi_policy *p = policy_test_parse("bogus\nset strict yes\nset strict no\n");
	vi_policy_print_diagnostics(p, fds[1]);
	close(fds[1]);
	char buf[512];
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "t.policy:1:1: error: unknown keyword 'bogus' (expected route, "
				 "trace, program or set)\n"
				 "t.policy:3:5: warning: duplicate setting 'strict'; this replaces "
				 "the one at t.policy:2\n");
	vi_policy_free(p);
}

/* ----- files ----- */

static char *read_whole_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *text = NULL;
	size_t cap = 0;
	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 4096;
			text = realloc(text, cap + 1);
			assert_non_null(text);
		}
		size_t n = fread(text + *len, 1, cap - *len, f);
		*len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	text[*len] = '\0';
	return text;
}

static void test_load_design_example(void **state)
{
	struct vi_policy *p = vi_policy_load(VI_POLICY_DATA_DIR "/good/redis-server.policy");
	assert_non_null(p);
	assert_int_equal(p->ndiagnostics, 0);
	assert_int_equal(p->nroutes, 4);
	assert_int_equal(p->ntraces, 1);
	assert_string_equal(p->routes[0].program, "redis-*");
	assert_int_equal(p->routes[3].reconnect_ms, 30000);
	assert_string_equal(p->routes[3].pos.file, VI_POLICY_DATA_DIR "/good/redis-server.policy");
	vi_policy_free(p);
}

static void test_example_policy_passes_check(void **state)
{
	struct vi_policy *p = vi_policy_load(VI_EXAMPLE_POLICY);
	assert_non_null(p);
	if (p->ndiagnostics != 0) {
		vi_policy_print_diagnostics(p, 2);
		fail();
	}
	assert_true(p->nroutes > 0);
	vi_policy_free(p);
}

/* Calls `each` for every file in data directory `sub` whose name ends in ".policy". */
static void for_each_data_policy(const char *sub, void (*each)(const char *dir, const char *name))
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", VI_POLICY_DATA_DIR, sub);
	DIR *d = opendir(dir);
	assert_non_null(d);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 7 && strcmp(e->d_name + n - 7, ".policy") == 0) {
			each(dir, e->d_name);
			count++;
		}
	}
	closedir(d);
	assert_true(count > 0);
}

static void check_good_file(const char *dir, const char *name)
{
	char path[8192];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct vi_policy *p = vi_policy_load(path);
	assert_non_null(p);
	if (p->ndiagnostics != 0) {
		vi_policy_print_diagnostics(p, 2);
		fail_msg("%s has diagnostics", name);
	}
	vi_policy_free(p);
}

static void test_every_good_data_file_is_clean(void **state)
{
	for_each_data_policy("good", check_good_file);
}

/* bad/NAME.policy, parsed as "NAME.policy", must print exactly bad/NAME.expected. */
static void check_bad_file(const char *dir, const char *name)
{
	char path[8192];
	size_t len, expected_len;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *text = read_whole_file(path, &len);
	snprintf(path + strlen(path) - strlen(".policy"), 16, ".expected");
	char *expected = read_whole_file(path, &expected_len);
	struct vi_policy *p = vi_policy_parse(text, len, name);
	assert_non_null(p);
	assert_true(p->nerrors > 0);
	char *d = policy_test_diagnostics(p);
	assert_string_equal(d, expected);
	free(d);
	vi_policy_free(p);
	free(expected);
	free(text);
}

static void test_every_bad_data_file_prints_its_expected_diagnostics(void **state)
{
	for_each_data_policy("bad", check_bad_file);
}

static void test_missing_file_gives_one_error(void **state)
{
	struct vi_policy *p = vi_policy_load(VI_POLICY_DATA_DIR "/no-such.policy");
	assert_non_null(p);
	assert_int_equal(p->nerrors, 1);
	assert_int_equal(p->ndiagnostics, 1);
	assert_int_equal(p->diagnostics[0].pos.line, 0);
	assert_int_equal(p->nroutes, 0);
	char *d = policy_test_diagnostics(p);
	assert_string_equal(d, VI_POLICY_DATA_DIR "/no-such.policy: error: cannot read policy: "
						  "No such file or directory\n");
	free(d);
	vi_policy_free(p);
}

static void test_directory_gives_one_error(void **state)
{
	struct vi_policy *p = vi_policy_load(VI_POLICY_DATA_DIR);
	assert_non_null(p);
	assert_int_equal(p->nerrors, 1);
	assert_string_equal(p->diagnostics[0].message, "cannot read policy: Is a directory");
	vi_policy_free(p);
}

static void test_path_through_a_file_gives_not_a_directory(void **state)
{
	struct vi_policy *p = vi_policy_load(VI_EXAMPLE_POLICY "/x.policy");
	assert_non_null(p);
	assert_string_equal(p->diagnostics[0].message, "cannot read policy: Not a directory");
	vi_policy_free(p);
}

static void test_unreadable_file_gives_permission_denied(void **state)
{
	if (geteuid() == 0)
		skip(); /* root reads a mode 000 file */
	char path[] = "/tmp/viaudit-policy-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	chmod(path, 0);
	struct vi_policy *p = vi_policy_load(path);
	unlink(path);
	assert_non_null(p);
	assert_string_equal(p->diagnostics[0].message, "cannot read policy: Permission denied");
	vi_policy_free(p);
}

/* Writes `size` bytes of comment lines to a new temporary file; returns its path in `path`. */
static void write_comment_file(char *path, size_t size)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	char line[64];
	memset(line, ' ', sizeof(line));
	line[0] = '#';
	line[sizeof(line) - 1] = '\n';
	for (size_t done = 0; done < size;) {
		size_t n = size - done < sizeof(line) ? size - done : sizeof(line);
		assert_int_equal(write(fd, line, n), (ssize_t)n);
		done += n;
	}
	close(fd);
}

static void test_file_over_one_mib_is_refused(void **state)
{
	char path[] = "/tmp/viaudit-policy-XXXXXX";
	write_comment_file(path, (1 << 20) + 1);
	struct vi_policy *p = vi_policy_load(path);
	unlink(path);
	assert_non_null(p);
	assert_int_equal(p->nerrors, 1);
	assert_string_equal(p->diagnostics[0].message,
			    "cannot read policy: file is larger than 1 MiB");
	vi_policy_free(p);
}

static void test_file_of_exactly_one_mib_is_read(void **state)
{
	char path[] = "/tmp/viaudit-policy-XXXXXX";
	write_comment_file(path, 1 << 20);
	struct vi_policy *p = vi_policy_load(path);
	unlink(path);
	assert_non_null(p);
	assert_int_equal(p->ndiagnostics, 0);
	vi_policy_free(p);
}

/* ----- memory ----- */

static void test_out_of_memory_returns_null_and_frees_everything(void **state)
{
	size_t len;
	char path[4096];
	snprintf(path, sizeof(path), "%s/bad/every-error.policy", VI_POLICY_DATA_DIR);
	char *text = read_whole_file(path, &len);
	/* Fail the first, second, ... allocation until a parse succeeds; ASan checks that the
	 * failed ones leaked nothing. */
	struct vi_policy *p = NULL;
	long n;
	for (n = 0; n < 100000 && p == NULL; n++) {
		allocations_left = n;
		p = vi_policy_parse(text, len, "every-error.policy");
		allocations_left = -1;
	}
	assert_non_null(p);
	assert_true(n > 1);
	assert_true(p->nerrors > 0);
	vi_policy_free(p);
	free(text);
}

static void test_free_accepts_null(void **state)
{
	vi_policy_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_text_gives_empty_policy),
		cmocka_unit_test(test_settings_have_defaults),
		cmocka_unit_test(test_comments_and_blank_lines_are_ignored),
		cmocka_unit_test(test_comment_after_words_is_ignored),
		cmocka_unit_test(test_tabs_separate_words),
		cmocka_unit_test(test_crlf_line_endings_are_accepted),
		cmocka_unit_test(test_last_line_without_newline_is_parsed),
		cmocka_unit_test(test_very_long_line_is_parsed),
		cmocka_unit_test(test_route_records_every_field),
		cmocka_unit_test(test_route_caller_kinds),
		cmocka_unit_test(test_route_protocols),
		cmocka_unit_test(test_route_transports),
		cmocka_unit_test(test_endpoint_star_is_every_host_and_port),
		cmocka_unit_test(test_endpoint_star_host_with_port),
		cmocka_unit_test(test_route_with_ipv4_prefix_and_port_range),
		cmocka_unit_test(test_ipv4_host_without_prefix_or_port_is_one_address_every_port),
		cmocka_unit_test(test_endpoint_port_star_is_every_port),
		cmocka_unit_test(test_route_with_ipv6_prefix_and_port_range),
		cmocka_unit_test(test_ipv6_loopback_with_port),
		cmocka_unit_test(test_ipv6_prefix_without_port),
		cmocka_unit_test(test_ipv6_full_form_and_dotted_tail),
		cmocka_unit_test(test_route_options_fallback_and_reconnect),
		cmocka_unit_test(test_reconnect_units_and_bare_seconds),
		cmocka_unit_test(test_program_scopes_the_rules_after_it),
		cmocka_unit_test(test_trace_records_symbols_and_their_columns),
		cmocka_unit_test(test_set_ring_size_accepts_suffixes),
		cmocka_unit_test(test_set_spin_us_number_or_auto),
		cmocka_unit_test(test_set_strict_words),
		cmocka_unit_test(test_set_log_takes_a_list),
		cmocka_unit_test(test_set_log_trace),
		cmocka_unit_test(test_set_prototypes_keeps_the_path_as_written),
		cmocka_unit_test(test_set_door_peers),
		cmocka_unit_test(test_unknown_keyword),
		cmocka_unit_test(test_error_column_points_at_transport),
		cmocka_unit_test(test_unknown_protocol),
		cmocka_unit_test(test_one_line_reports_each_bad_word),
		cmocka_unit_test(test_missing_endpoint_points_after_last_word),
		cmocka_unit_test(test_route_alone_is_missing_caller),
		cmocka_unit_test(test_missing_transport),
		cmocka_unit_test(test_port_out_of_range),
		cmocka_unit_test(test_port_range_end_out_of_range),
		cmocka_unit_test(test_reversed_port_range),
		cmocka_unit_test(test_missing_port_after_colon),
		cmocka_unit_test(test_port_name_is_an_error),
		cmocka_unit_test(test_half_open_port_range_is_an_error),
		cmocka_unit_test(test_prefix_too_long_for_ipv4),
		cmocka_unit_test(test_prefix_too_long_for_ipv6),
		cmocka_unit_test(test_missing_prefix_length),
		cmocka_unit_test(test_bad_prefix),
		cmocka_unit_test(test_ipv6_prefix_inside_brackets_is_an_error),
		cmocka_unit_test(test_ipv6_without_brackets_is_an_error),
		cmocka_unit_test(test_bad_ipv4_address),
		cmocka_unit_test(test_host_name_is_an_error),
		cmocka_unit_test(test_bad_ipv6_address),
		cmocka_unit_test(test_missing_closing_bracket),
		cmocka_unit_test(test_prefix_on_star_host_is_an_error),
		cmocka_unit_test(test_text_after_endpoint_is_an_error),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_word_after_transport_is_trailing_text),
		cmocka_unit_test(test_unknown_fallback),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_duration_longer_than_a_day),
		cmocka_unit_test(test_option_given_twice),
		cmocka_unit_test(test_soname_glob_with_slash_is_an_error),
		cmocka_unit_test(test_unclosed_bracket_in_glob),
		cmocka_unit_test(test_glob_ending_in_backslash),
		cmocka_unit_test(test_trace_without_symbols),
		cmocka_unit_test(test_trace_empty_symbol),
		cmocka_unit_test(test_trace_bad_symbol_name),
		cmocka_unit_test(test_trace_space_after_comma),
		cmocka_unit_test(test_program_without_glob),
		cmocka_unit_test(test_program_glob_with_slash),
		cmocka_unit_test(test_program_trailing_text),
		cmocka_unit_test(test_set_unknown_key),
		cmocka_unit_test(test_set_without_key_or_value),
		cmocka_unit_test(test_ring_size_not_a_power_of_two),
		cmocka_unit_test(test_ring_size_limits),
		cmocka_unit_test(test_ring_size_bad_suffix),
		cmocka_unit_test(test_ring_size_huge_number_is_above_maximum),
		cmocka_unit_test(test_spin_us_negative),
		cmocka_unit_test(test_spin_us_too_large),
		cmocka_unit_test(test_strict_bad_word),
		cmocka_unit_test(test_log_unknown_category),
		cmocka_unit_test(test_door_peers_bad_word),
		cmocka_unit_test(test_set_trailing_text),
		cmocka_unit_test(test_bad_setting_keeps_the_default),
		cmocka_unit_test(test_nul_byte_is_an_error),
		cmocka_unit_test(test_error_reports_every_bad_line),
		cmocka_unit_test(test_bad_rule_is_not_kept),
		cmocka_unit_test(test_long_word_is_cut_in_message),
		cmocka_unit_test(test_bytes_above_ascii_are_escaped_in_message),
		cmocka_unit_test(test_unknown_trace_symbol_warns_and_is_kept),
		cmocka_unit_test(test_fortified_names_are_known_symbols),
		cmocka_unit_test(test_duplicate_setting_warns_and_last_wins),
		cmocka_unit_test(test_route_after_match_everything_is_unreachable),
		cmocka_unit_test(test_match_everything_for_every_program_shadows_later_scopes),
		cmocka_unit_test(test_match_everything_in_a_scope_shadows_its_own_rules),
		cmocka_unit_test(test_program_line_ends_a_match_everything_scope),
		cmocka_unit_test(test_narrow_rule_does_not_shadow),
		cmocka_unit_test(test_diagnostic_format_cuts_a_long_line_and_keeps_its_newline),
		cmocka_unit_test(test_diagnostic_format_of_unreadable_file_has_no_line),
		cmocka_unit_test(test_print_diagnostics_writes_a_long_file_name_whole),
		cmocka_unit_test(test_print_diagnostics_writes_every_line),
		cmocka_unit_test(test_load_design_example),
		cmocka_unit_test(test_example_policy_passes_check),
		cmocka_unit_test(test_every_good_data_file_is_clean),
		cmocka_unit_test(test_every_bad_data_file_prints_its_expected_diagnostics),
		cmocka_unit_test(test_missing_file_gives_one_error),
		cmocka_unit_test(test_directory_gives_one_error),
		cmocka_unit_test(test_path_through_a_file_gives_not_a_directory),
		cmocka_unit_test(test_unreadable_file_gives_permission_denied),
		cmocka_unit_test(test_file_over_one_mib_is_refused),
		cmocka_unit_test(test_file_of_exactly_one_mib_is_read),
		cmocka_unit_test(test_out_of_memory_returns_null_and_frees_everything),
		cmocka_unit_test(test_free_accepts_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
