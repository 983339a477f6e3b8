/* The -fno-plt library of the `viaudit explain` test. */
#ifndef VIAUDIT_TEST_EXPLAIN_LIB_H
#define VIAUDIT_TEST_EXPLAIN_LIB_H

#include <sys/types.h>

/* Exported from the library (the project builds with -fvisibility=hidden). */
#define EXPLAIN_LIB_EXPORT __attribute__((visibility("default")))

/* Makes a TCP socket: `socket` is reached through a GOT slot (R_X86_64_GLOB_DAT). */
EXPLAIN_LIB_EXPORT int explain_lib_socket(void);

/* Sends one byte: `send` is reached through a GOT slot too. */
EXPLAIN_LIB_EXPORT ssize_t explain_lib_send(int fd);

#endif
