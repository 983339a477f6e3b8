/* The table of the program's libc functions (see libc.h for why it exists). */
#include "libc.h"

#include <stddef.h>

struct vi_libc vi_libc;

int vi_libc_complete(void)
{
	void *const *p = (void *const *)&vi_libc;
	for (size_t i = 0; i < sizeof(vi_libc) / sizeof(void *); i++)
		if (p[i] == NULL)
			return 0;
	return 1;
}
