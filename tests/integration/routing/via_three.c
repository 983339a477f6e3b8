/* libvia_three.so: a linked test library built with -fno-plt that also sends through a pointer to send(). */
#include "via_client.h"

#include <sys/socket.h>

int via_three_round_trip(const char *port_text)
{
	/* &send is loaded from the same GLOB_DAT GOT slot as the -fno-plt calls use. */
	return via_client_round_trip("libvia_three.so", port_text, &send);
}
