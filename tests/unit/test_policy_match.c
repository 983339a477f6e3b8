/* Unit tests of routing decisions: which route, trace or caller a policy picks for a call. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "policy_test.h"

/* A socket address in a form every family fits, with its length. */
struct test_address {
	struct sockaddr_storage storage;
	socklen_t len;
};

static struct test_address address(const char *ip, unsigned port)
{
	struct test_address a;
	memset(&a, 0, sizeof(a));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.storage;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		a.len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.storage;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
		a.len = sizeof(*sin);
	}
	return a;
}

static const struct vi_object main_object = { .is_main = true, .path = "/usr/bin/app" };
static const struct vi_object libpq = { .path = "/usr/lib/x86_64-linux-gnu/libpq.so.5.15",
					.soname = "libpq.so.5" };
static const struct vi_object plugin = { .path = "/opt/app/lib/plugins/extra.so" };

/* The line of the route chosen for a connect by `object` in program "app", or 0 for none. */
static unsigned route_line(const struct vi_policy *p, const struct vi_object *object,
			   enum vi_proto proto, const char *ip, unsigned port)
{
	struct test_address a = address(ip, port);
	const struct vi_route *r = vi_policy_match_route(p, "app", object, proto,
							 (const struct sockaddr *)&a.storage, a.len,
							 false);
	return r ? r->pos.line : 0;
}

static unsigned bind_line(const struct vi_policy *p, const char *ip, unsigned port)
{
	struct test_address a = address(ip, port);
	const struct vi_route *r = vi_policy_match_route(p, "app", &main_object, VI_PROTO_TCP4,
							 (const struct sockaddr *)&a.storage, a.len,
							 true);
	return r ? r->pos.line : 0;
}

/* ----- first match ----- */

static void test_first_match_wins(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.0/8:6379 shm\n"
						      "route main tcp *:6379 tcp\n"
						      "route main tcp * kernel\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 6379), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.1.1.1", 6379), 2);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.1.1.1", 80), 3);
	vi_policy_free(p);
}

static void test_no_match_means_kernel(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:6379 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 80), 0);
	assert_int_equal(route_line(p, &libpq, VI_PROTO_TCP4, "127.0.0.1", 6379), 0);
	vi_policy_free(p);
}

static void test_empty_policy_routes_nothing(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 80), 0);
	assert_false(vi_policy_may_route(p, "app", &main_object));
	vi_policy_free(p);
}

static void test_program_scope_restricts_routes(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("program redis-*\n"
						      "route main tcp * shm\n"
						      "program *\n"
						      "route main tcp * tcp\n");
	struct test_address a = address("127.0.0.1", 6379);
	const struct sockaddr *sa = (const struct sockaddr *)&a.storage;
	const struct vi_route *r =
		vi_policy_match_route(p, "redis-server", &main_object, VI_PROTO_TCP4, sa, a.len, false);
	assert_int_equal(r->transport, VI_TRANSPORT_SHM);
	r = vi_policy_match_route(p, "psql", &main_object, VI_PROTO_TCP4, sa, a.len, false);
	assert_int_equal(r->transport, VI_TRANSPORT_TCP);
	vi_policy_free(p);
}

/* ----- PROTO ----- */

static void test_proto_tcp_matches_tcp4_and_tcp6(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp * shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_UDP, "127.0.0.1", 1), 0);
	vi_policy_free(p);
}

static void test_proto_tcp4_does_not_match_tcp6(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp4 * shm\nroute main tcp6 * tcp\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::1", 1), 2);
	vi_policy_free(p);
}

static void test_proto_udp_matches_only_udp(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main udp * tcp\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_UDP, "127.0.0.1", 53), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 53), 0);
	vi_policy_free(p);
}

static void test_proto_star_matches_every_protocol(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main * * tcp\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_UDP, "127.0.0.1", 1), 1);
	vi_policy_free(p);
}

/* ----- ENDPOINT ----- */

static void test_ipv4_prefix_covers_its_network_only(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.0/8 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.255.255.254", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "128.0.0.1", 1), 0);
	vi_policy_free(p);
}

static void test_prefix_with_partial_byte(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 10.128.0.0/9 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.200.1.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.127.1.1", 1), 0);
	vi_policy_free(p);
}

static void test_host_bits_past_the_prefix_are_ignored(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 10.1.2.3/8 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.9.9.9", 1), 1);
	vi_policy_free(p);
}

static void test_prefix_zero_covers_every_address(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 0.0.0.0/0:80 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "203.0.113.9", 80), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "203.0.113.9", 81), 0);
	vi_policy_free(p);
}

static void test_exact_host_without_prefix(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 192.168.1.20 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "192.168.1.20", 5), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "192.168.1.21", 5), 0);
	vi_policy_free(p);
}

static void test_port_range_includes_both_ends(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:8000-8099 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 7999), 0);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 8000), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 8099), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 8100), 0);
	vi_policy_free(p);
}

static void test_ipv6_prefix_covers_its_network_only(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp [fe80::]/10:6379 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "fe80::1", 6379), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "febf::1", 6379), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "fec0::1", 6379), 0);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "fe80::1", 6380), 0);
	vi_policy_free(p);
}

static void test_ipv4_mapped_address_matches_ipv4_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.0/8:6379 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::ffff:127.0.0.1", 6379), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::ffff:10.0.0.1", 6379), 0);
	vi_policy_free(p);
}

static void test_ipv4_address_matches_mapped_ipv6_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp [::ffff:127.0.0.0]/104 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 1), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "10.0.0.1", 1), 0);
	vi_policy_free(p);
}

static void test_ipv6_address_does_not_match_ipv4_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 0.0.0.0/0 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP6, "::1", 1), 0);
	vi_policy_free(p);
}

static void test_wildcard_bind_matches_every_host(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.1:6379 shm\n"
						      "route main tcp [::1]:6380 shm\n");
	assert_int_equal(bind_line(p, "0.0.0.0", 6379), 1);
	assert_int_equal(bind_line(p, "::", 6379), 1);
	assert_int_equal(bind_line(p, "::", 6380), 2);
	assert_int_equal(bind_line(p, "0.0.0.0", 6380), 2);
	vi_policy_free(p);
}

static void test_wildcard_bind_still_checks_ports(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.1:6379 shm\n");
	assert_int_equal(bind_line(p, "0.0.0.0", 6378), 0);
	vi_policy_free(p);
}

static void test_specific_bind_address_is_matched_as_is(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.1:6379 shm\n");
	assert_int_equal(bind_line(p, "127.0.0.1", 6379), 1);
	assert_int_equal(bind_line(p, "10.0.0.1", 6379), 0);
	vi_policy_free(p);
}

static void test_wildcard_address_on_connect_is_not_every_host(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.1:6379 shm\n");
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "0.0.0.0", 6379), 0);
	vi_policy_free(p);
}

static void test_unknown_address_matches_only_full_wildcard_endpoint(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:6379 shm\n"
						      "route main tcp 127.0.0.0/8 shm\n"
						      "route main tcp *:* tcp\n");
	const struct vi_route *r =
		vi_policy_match_route(p, "app", &main_object, VI_PROTO_TCP4, NULL, 0, false);
	assert_non_null(r);
	assert_int_equal(r->pos.line, 3);
	vi_policy_free(p);
}

static void test_unknown_address_without_wildcard_route_is_no_match(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:6379 shm\n");
	assert_null(vi_policy_match_route(p, "app", &main_object, VI_PROTO_TCP4, NULL, 0, false));
	vi_policy_free(p);
}

static void test_unix_address_is_treated_as_unknown(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main * 0.0.0.0/0 shm\n"
						      "route main * * tcp\n");
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/tmp/s" };
	const struct vi_route *r = vi_policy_match_route(p, "app", &main_object, VI_PROTO_ANY,
							 (const struct sockaddr *)&sun, sizeof(sun),
							 false);
	assert_int_equal(r->pos.line, 2);
	vi_policy_free(p);
}

static void test_short_address_length_is_treated_as_unknown(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp 127.0.0.1 shm\n");
	struct test_address a = address("127.0.0.1", 1);
	assert_null(vi_policy_match_route(p, "app", &main_object, VI_PROTO_TCP4,
					  (const struct sockaddr *)&a.storage, 4, false));
	vi_policy_free(p);
}

/* ----- CALLER ----- */

static void test_caller_main_matches_only_the_executable(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_MAIN };
	assert_true(vi_caller_matches(&c, &main_object));
	assert_false(vi_caller_matches(&c, &libpq));
}

static void test_caller_star_matches_every_object(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_ANY };
	assert_true(vi_caller_matches(&c, &main_object));
	assert_true(vi_caller_matches(&c, &libpq));
	assert_true(vi_caller_matches(&c, &plugin));
}

static void test_soname_glob_matches_the_soname(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "libpq.so.*" };
	assert_true(vi_caller_matches(&c, &libpq));
	struct vi_caller file_name = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "libpq.so.5.15" };
	assert_false(vi_caller_matches(&file_name, &libpq));
}

static void test_soname_glob_matches_basename_without_soname(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "extra.so" };
	assert_true(vi_caller_matches(&c, &plugin));
	struct vi_caller dir = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "plugins*" };
	assert_false(vi_caller_matches(&dir, &plugin));
}

static void test_soname_glob_never_matches_main(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "*" };
	struct vi_object pie_with_soname = { .is_main = true, .path = "/usr/bin/app",
					     .soname = "app" };
	assert_false(vi_caller_matches(&c, &main_object));
	assert_false(vi_caller_matches(&c, &pie_with_soname));
}

static void test_soname_glob_does_not_match_unnamed_object(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_SONAME_GLOB, .pattern = "*" };
	struct vi_object unnamed = { .path = "" };
	assert_false(vi_caller_matches(&c, &unnamed));
}

static void test_path_glob_star_crosses_slashes(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_PATH_GLOB, .pattern = "/opt/app/*.so" };
	assert_true(vi_caller_matches(&c, &plugin));
	assert_false(vi_caller_matches(&c, &libpq));
}

static void test_path_glob_matches_main_by_its_path(void **state)
{
	struct vi_caller c = { .kind = VI_CALLER_PATH_GLOB, .pattern = "/usr/bin/*" };
	assert_true(vi_caller_matches(&c, &main_object));
	struct vi_object unknown = { .is_main = true, .path = "" };
	assert_false(vi_caller_matches(&c, &unknown));
}

static void test_route_caller_selects_the_object(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route libpq.so.* tcp *:5432 shm\n"
						      "route /opt/app/* tcp * verbs\n");
	assert_int_equal(route_line(p, &libpq, VI_PROTO_TCP4, "127.0.0.1", 5432), 1);
	assert_int_equal(route_line(p, &main_object, VI_PROTO_TCP4, "127.0.0.1", 5432), 0);
	assert_int_equal(route_line(p, &plugin, VI_PROTO_TCP4, "127.0.0.1", 5432), 2);
	vi_policy_free(p);
}

static void test_object_display_name(void **state)
{
	struct vi_object unnamed = { .path = "" };
	assert_string_equal(vi_object_display_name(&main_object), "main");
	assert_string_equal(vi_object_display_name(&libpq), "libpq.so.5");
	assert_string_equal(vi_object_display_name(&plugin), "extra.so");
	assert_string_equal(vi_object_display_name(&unnamed), "?");
}

static void test_program_matches_glob(void **state)
{
	assert_true(vi_program_matches("redis-*", "redis-server"));
	assert_false(vi_program_matches("redis-*", "psql"));
	assert_true(vi_program_matches(NULL, "psql"));
}

/* ----- may_route ----- */

static void test_may_route_true_for_a_non_kernel_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route libpq.so.* tcp *:5432 shm\n");
	assert_true(vi_policy_may_route(p, "app", &libpq));
	assert_false(vi_policy_may_route(p, "app", &main_object));
	vi_policy_free(p);
}

static void test_may_route_false_after_everything_kernel_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route libpq.so.* * * kernel\n"
						      "route * tcp * shm\n");
	assert_false(vi_policy_may_route(p, "app", &libpq));
	assert_true(vi_policy_may_route(p, "app", &main_object));
	vi_policy_free(p);
}

static void test_may_route_continues_past_narrow_kernel_rule(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("route main tcp *:22 kernel\n"
						      "route main udp * kernel\n"
						      "route main tcp * shm\n");
	assert_true(vi_policy_may_route(p, "app", &main_object));
	vi_policy_free(p);
}

static void test_may_route_respects_program_scope(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("program redis-*\nroute main tcp * shm\n");
	assert_true(vi_policy_may_route(p, "redis-server", &main_object));
	assert_false(vi_policy_may_route(p, "app", &main_object));
	vi_policy_free(p);
}

/* ----- trace ----- */

static void test_match_trace_finds_a_named_symbol(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("trace libpq.so.* connect,send\n");
	const struct vi_trace *t = vi_policy_match_trace(p, "app", &libpq, "send");
	assert_non_null(t);
	assert_int_equal(t->pos.line, 1);
	assert_null(vi_policy_match_trace(p, "app", &libpq, "recv"));
	vi_policy_free(p);
}

static void test_match_trace_respects_caller_and_program(void **state)
{
	struct vi_policy *p = policy_test_parse_clean("program psql\ntrace main connect\n");
	assert_non_null(vi_policy_match_trace(p, "psql", &main_object, "connect"));
	assert_null(vi_policy_match_trace(p, "app", &main_object, "connect"));
	assert_null(vi_policy_match_trace(p, "psql", &libpq, "connect"));
	vi_policy_free(p);
}

/* ----- names ----- */

static void test_transport_and_protocol_names(void **state)
{
	assert_string_equal(vi_transport_name(VI_TRANSPORT_SHM), "shm");
	assert_string_equal(vi_transport_name(VI_TRANSPORT_VERBS), "verbs");
	assert_string_equal(vi_transport_name(VI_TRANSPORT_AUTO), "auto");
	assert_string_equal(vi_transport_name(VI_TRANSPORT_TCP), "tcp");
	assert_string_equal(vi_transport_name(VI_TRANSPORT_KERNEL), "kernel");
	assert_string_equal(vi_proto_name(VI_PROTO_ANY), "*");
	assert_string_equal(vi_proto_name(VI_PROTO_TCP), "tcp");
	assert_string_equal(vi_proto_name(VI_PROTO_TCP4), "tcp4");
	assert_string_equal(vi_proto_name(VI_PROTO_TCP6), "tcp6");
	assert_string_equal(vi_proto_name(VI_PROTO_UDP), "udp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_no_match_means_kernel),
		cmocka_unit_test(test_empty_policy_routes_nothing),
		cmocka_unit_test(test_program_scope_restricts_routes),
		cmocka_unit_test(test_proto_tcp_matches_tcp4_and_tcp6),
		cmocka_unit_test(test_proto_tcp4_does_not_match_tcp6),
		cmocka_unit_test(test_proto_udp_matches_only_udp),
		cmocka_unit_test(test_proto_star_matches_every_protocol),
		cmocka_unit_test(test_ipv4_prefix_covers_its_network_only),
		cmocka_unit_test(test_prefix_with_partial_byte),
		cmocka_unit_test(test_host_bits_past_the_prefix_are_ignored),
		cmocka_unit_test(test_prefix_zero_covers_every_address),
		cmocka_unit_test(test_exact_host_without_prefix),
		cmocka_unit_test(test_port_range_includes_both_ends),
		cmocka_unit_test(test_ipv6_prefix_covers_its_network_only),
		cmocka_unit_test(test_ipv4_mapped_address_matches_ipv4_rule),
		cmocka_unit_test(test_ipv4_address_matches_mapped_ipv6_rule),
		cmocka_unit_test(test_ipv6_address_does_not_match_ipv4_rule),
		cmocka_unit_test(test_wildcard_bind_matches_every_host),
		cmocka_unit_test(test_wildcard_bind_still_checks_ports),
		cmocka_unit_test(test_specific_bind_address_is_matched_as_is),
		cmocka_unit_test(test_wildcard_address_on_connect_is_not_every_host),
		cmocka_unit_test(test_unknown_address_matches_only_full_wildcard_endpoint),
		cmocka_unit_test(test_unknown_address_without_wildcard_route_is_no_match),
		cmocka_unit_test(test_unix_address_is_treated_as_unknown),
		cmocka_unit_test(test_short_address_length_is_treated_as_unknown),
		cmocka_unit_test(test_caller_main_matches_only_the_executable),
		cmocka_unit_test(test_caller_star_matches_every_object),
		cmocka_unit_test(test_soname_glob_matches_the_soname),
		cmocka_unit_test(test_soname_glob_matches_basename_without_soname),
		cmocka_unit_test(test_soname_glob_never_matches_main),
		cmocka_unit_test(test_soname_glob_does_not_match_unnamed_object),
		cmocka_unit_test(test_path_glob_star_crosses_slashes),
		cmocka_unit_test(test_path_glob_matches_main_by_its_path),
		cmocka_unit_test(test_route_caller_selects_the_object),
		cmocka_unit_test(test_object_display_name),
		cmocka_unit_test(test_program_matches_glob),
		cmocka_unit_test(test_may_route_true_for_a_non_kernel_rule),
		cmocka_unit_test(test_may_route_false_after_everything_kernel_rule),
		cmocka_unit_test(test_may_route_continues_past_narrow_kernel_rule),
		cmocka_unit_test(test_may_route_respects_program_scope),
		cmocka_unit_test(test_match_trace_finds_a_named_symbol),
		cmocka_unit_test(test_match_trace_respects_caller_and_program),
		cmocka_unit_test(test_transport_and_protocol_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
