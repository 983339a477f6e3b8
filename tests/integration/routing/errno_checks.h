/* The errno checks that errno_main runs from the executable and from libvia_errno.so. */
#ifndef ERRNO_CHECKS_H
#define ERRNO_CHECKS_H

#include "via_client.h"

/*
 * Makes each socket call that must fail (connect to a closed port, send on bad fds,
 * connect with a bad address length) from the object this file is compiled into, and
 * prints one line per check to stdout: "WHO CHECK ERRNO ok" or "WHO CHECK FAILED: ...".
 * Returns the number of failed checks.
 */
int errno_run_checks(const char *who);

/* libvia_errno.so: errno_run_checks made from the library's own object. */
VIA_EXPORT int via_errno_run_checks(void);

#endif
