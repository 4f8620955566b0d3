/*
 * testutil.h - the few assertion macros the C tests share.
 *
 * A failed CHECK prints file:line and the expression, and counts; the test goes on so that one
 * run shows every failure. TEST_MAIN_END prints "N passed, N failed" and sets the exit code.
 */
#ifndef SG_TESTUTIL_H
#define SG_TESTUTIL_H

#include <stdio.h>
#include <string.h>

static int tu_passed, tu_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			tu_passed++;                                                               \
		} else {                                                                           \
			tu_failed++;                                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

#define CHECK_INT(got, want)                                                                       \
	do {                                                                                       \
		long long tu_g = (long long)(got), tu_w = (long long)(want);                       \
		if (tu_g == tu_w) {                                                                \
			tu_passed++;                                                               \
		} else {                                                                           \
			tu_failed++;                                                               \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__,      \
			        #got, tu_g, tu_w);                                                 \
		}                                                                                  \
	} while (0)

#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *tu_g = (got), *tu_w = (want);                                          \
		if ((tu_g == NULL && tu_w == NULL) ||                                              \
		    (tu_g != NULL && tu_w != NULL && strcmp(tu_g, tu_w) == 0)) {                   \
			tu_passed++;                                                               \
		} else {                                                                           \
			tu_failed++;                                                               \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", __FILE__, __LINE__,  \
			        #got, tu_g ? tu_g : "(null)", tu_w ? tu_w : "(null)");             \
		}                                                                                  \
	} while (0)

#define TEST_MAIN_END()                                                                            \
	do {                                                                                       \
		printf("%d passed, %d failed\n", tu_passed, tu_failed);                            \
		return tu_failed == 0 && tu_passed > 0 ? 0 : 1;                                    \
	} while (0)

#endif /* SG_TESTUTIL_H */
