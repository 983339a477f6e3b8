/* libvia_four.so: a test library built with -fno-plt that route_main loads with dlopen() instead of linking it. */
#include "via_client.h"

int via_four_round_trip(const char *port_text)
{
	return via_client_round_trip("libvia_four.so", port_text, NULL);
}
