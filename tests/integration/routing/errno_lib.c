/* libvia_errno.so: runs the errno checks with the library's own socket calls. */
#include "errno_checks.h"

int via_errno_run_checks(void)
{
	return errno_run_checks("libvia_errno.so");
}
