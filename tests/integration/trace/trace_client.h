/* The socket calls each trace test library makes from its own object, and the libraries' entry points. */
#ifndef TRACE_CLIENT_H
#define TRACE_CLIENT_H

/* Exported from a test library (the project builds with -fvisibility=hidden). */
#define TRACE_EXPORT __attribute__((visibility("default")))

/*
 * Makes a fixed sequence of calls from the object this file is compiled into: socket,
 * connect to 127.0.0.1:PORT_TEXT (an echo server), send "hello", recv it back with
 * MSG_WAITALL, shutdown(SHUT_WR), close, and one send(-1) that fails with EBADF. WHO names
 * the caller in messages on stderr. Returns 0, or -1 after printing why.
 */
int trace_client_run(const char *who, const char *port_text);

/* The test libraries, each built from trace_lib.c with its own name and link options. */
TRACE_EXPORT int trace_a_run(const char *port_text);     /* libtrace_a.so: PLT, lazy */
TRACE_EXPORT int trace_b_run(const char *port_text);     /* libtrace_b.so: PLT, lazy */
TRACE_EXPORT int trace_now_run(const char *port_text);   /* libtrace_now.so: -z now */
TRACE_EXPORT int trace_noplt_run(const char *port_text); /* libtrace_noplt.so: -fno-plt */

#endif
