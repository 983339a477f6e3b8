/* libssluser_noplt.so, built -fno-plt: its call of fakessl_read goes through a GLOB_DAT GOT slot. */
#include "fakessl.h"

int ssluser_read(struct fakessl *s, void *buf, int num)
{
	return fakessl_read(s, buf, num);
}
