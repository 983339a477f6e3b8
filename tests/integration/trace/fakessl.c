/* libfakessl.so: two functions with an SSL_read/SSL_write shape, for tracing through a prototype file. */
#include "fakessl.h"

#include <string.h>

int fakessl_write(struct fakessl *s, const void *buf, int num)
{
	s->calls++;
	return num;
}

int fakessl_read(struct fakessl *s, void *buf, int num)
{
	static const char data[] = "secret";
	int n = num < (int)sizeof(data) - 1 ? num : (int)sizeof(data) - 1;
	s->calls++;
	memcpy(buf, data, (size_t)n);
	return n;
}
