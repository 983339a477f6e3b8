/* libvia_two.so: a second linked test library whose socket calls go through its PLT. */
#include "via_client.h"

int via_two_round_trip(const char *port_text)
{
	return via_client_round_trip("libvia_two.so", port_text, NULL);
}
