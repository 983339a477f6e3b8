/* trace_ssl: calls libfakessl.so through its PLT, through a -fno-plt library, and through dlsym. */
#include "fakessl.h"

#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
	struct fakessl s = { 0 };
	char buf[64];
	int (*write_fn)(struct fakessl *, const void *, int);

	if (fakessl_write(&s, "hello", 5) != 5)
		return 1;
	if (ssluser_read(&s, buf, sizeof(buf)) != 6)
		return 1;
	/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
	*(void **)&write_fn = dlsym(RTLD_DEFAULT, "fakessl_write");
	if (write_fn == NULL || write_fn(&s, "bye", 3) != 3) {
		fprintf(stderr, "trace_ssl: dlsym fakessl_write: %s\n", dlerror());
		return 1;
	}
	printf("calls=%d\n", s.calls);
	return s.calls == 3 ? 0 : 1;
}
