/* bind_client PORT: one echo round trip to 127.0.0.1:PORT from the executable, built lazy, -z now and -fno-plt. */
#include "via_client.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: bind_client PORT\n");
		return 2;
	}
	if (via_client_round_trip("main", argv[1], NULL) != 0) {
		printf("bind_client FAILED\n");
		return 1;
	}
	printf("bind_client ok\n");
	return 0;
}
