/* A trace test library: TRACE_ENTRY (e.g. trace_a_run) makes trace_client_run's calls as TRACE_NAME. */
#include "trace_client.h"

int TRACE_ENTRY(const char *port_text)
{
	return trace_client_run(TRACE_NAME, port_text);
}
