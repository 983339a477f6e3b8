/* errno_main: a routed socket call that fails must leave its error in the program's errno, from the executable and from a library. */
#include "errno_checks.h"

#include <stdio.h>

int main(void)
{
	int failures = errno_run_checks("main");

	failures += via_errno_run_checks();
	printf("%d failed\n", failures);
	return failures == 0 ? 0 : 1;
}
