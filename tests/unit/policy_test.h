/* Helpers shared by the policy unit tests: parse a string, and read its diagnostics as one text. */
#ifndef VIAUDIT_TESTS_POLICY_TEST_H
#define VIAUDIT_TESTS_POLICY_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <viaudit/policy.h>

/* Parses `text` as a file named "t.policy". */
static inline struct vi_policy *policy_test_parse(const char *text)
{
	struct vi_policy *policy = vi_policy_parse(text, strlen(text), "t.policy");
	assert_non_null(policy);
	return policy;
}

/* Every diagnostic of `policy`, formatted and joined; the caller frees it. */
static inline char *policy_test_diagnostics(const struct vi_policy *policy)
{
	const size_t line_max = 16384;
	char *text = malloc(policy->ndiagnostics * line_max + 1);
	assert_non_null(text);
	size_t used = 0;
	text[0] = '\0';
	for (size_t i = 0; i < policy->ndiagnostics; i++)
		used += vi_diagnostic_format(&policy->diagnostics[i], text + used, line_max);
	return text;
}

/* Parses `text` and checks that its diagnostics read exactly `expected`. */
#define assert_diagnostics(text, expected)                                   \
	do {                                                                 \
		struct vi_policy *policy_ = policy_test_parse(text);        \
		char *diagnostics_ = policy_test_diagnostics(policy_);      \
		assert_string_equal(diagnostics_, expected);                \
		free(diagnostics_);                                          \
		vi_policy_free(policy_);                                     \
	} while (0)

/* Parses `text`, which must have no diagnostic at all. */
static inline struct vi_policy *policy_test_parse_clean(const char *text)
{
	struct vi_policy *policy = policy_test_parse(text);
	if (policy->ndiagnostics != 0) {
		char *diagnostics = policy_test_diagnostics(policy);
		print_error("unexpected diagnostics:\n%s", diagnostics);
		free(diagnostics);
		fail();
	}
	return policy;
}

#endif
