/*
 * file.c - see file.h.
 */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

char *
sg_read_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n = -1;
	int e = EINVAL;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && (size_t)n <= max &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
		fclose(f);
		return buf;
	}
	if (n > 0 && (size_t)n > max)
		e = EFBIG;
	else if (n > 0)
		e = buf == NULL ? ENOMEM : EIO;
	free(buf);
	fclose(f);
	errno = e;
	return NULL;
}
