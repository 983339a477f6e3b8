/* libvia_one.so: a linked test library whose socket calls go through its PLT. */
#include "via_client.h"

int via_one_round_trip(const char *port_text)
{
	return via_client_round_trip("libvia_one.so", port_text, NULL);
}
