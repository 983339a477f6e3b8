/* The echo round trip every routing test object makes with its own socket calls, and the entry points of the test libraries. */
#ifndef VIA_CLIENT_H
#define VIA_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

/* Exported from a test library (the project builds with -fvisibility=hidden). */
#define VIA_EXPORT __attribute__((visibility("default")))

/* The type of send(), for the library that calls it through a function pointer. */
typedef ssize_t (*via_send_fn)(int fd, const void *buffer, size_t length, int flags);

/*
 * Connects to 127.0.0.1:PORT_TEXT, sends 64 KiB in 4 KiB chunks and checks that each chunk
 * comes back unchanged. Every socket call is made from the object this file is compiled
 * into; send goes through SEND_FN when it is not NULL. WHO names the caller in the bytes
 * sent and in messages on stderr. Returns 0, or -1 after printing why.
 */
int via_client_round_trip(const char *who, const char *port_text, via_send_fn send_fn);

/* The test libraries: each makes one round trip from its own object; 0 or -1. */
VIA_EXPORT int via_one_round_trip(const char *port_text);
VIA_EXPORT int via_two_round_trip(const char *port_text);
VIA_EXPORT int via_three_round_trip(const char *port_text);
VIA_EXPORT int via_four_round_trip(const char *port_text);

/* The type of via_four_round_trip, which route_main finds with dlsym. */
typedef int (*via_round_trip_fn)(const char *port_text);

#endif
