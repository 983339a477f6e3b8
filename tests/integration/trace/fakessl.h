/* libfakessl.so: a stand-in for a TLS library (SSL_read, SSL_write) whose functions a user traces with a prototype file. */
#ifndef FAKESSL_H
#define FAKESSL_H

#define FAKESSL_EXPORT __attribute__((visibility("default")))

struct fakessl {
	int calls;
};

/* Counts the call and returns num, as if num bytes were written. */
FAKESSL_EXPORT int fakessl_write(struct fakessl *s, const void *buf, int num);

/* Stores "secret" (at most num bytes) in buf and returns how many it stored. */
FAKESSL_EXPORT int fakessl_read(struct fakessl *s, void *buf, int num);

/* libssluser_noplt.so (-fno-plt): calls fakessl_read through a GLOB_DAT GOT slot. */
FAKESSL_EXPORT int ssluser_read(struct fakessl *s, void *buf, int num);

#endif
