/*
 * file.h - reading a small file whole (a PEM certificate or key, a CA bundle).
 */
#ifndef SG_FILE_H
#define SG_FILE_H

#include <stddef.h>

/* The file at path as a NUL-terminated string (malloc'd; the caller frees), when it holds 1 to
 * max bytes; else NULL with errno set (EFBIG when too large, EINVAL when empty). */
char *sg_read_file(const char *path, size_t max);

#endif /* SG_FILE_H */
