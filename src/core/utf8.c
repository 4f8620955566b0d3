/*
 * utf8.c - UTF-8 checks for text that crosses the contract.
 */
#include "utf8.h"

#include <string.h>

size_t
sg_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

bool
sg_utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t k = sg_utf8_seq((const unsigned char *)s + i, len - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

int
sg_utf8_prefix(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 4), i = 0;

	while (i < len) {
		size_t k = sg_utf8_seq((const unsigned char *)s + i, len - i);
		if (k == 0)
			k = 1;
		if (i + k > max)
			break;
		i += k;
	}
	return (int)i;
}

const char *
sg_utf8_clean(sg_arena *a, const char *s)
{
	static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
	size_t len, out = 0;

	if (s == NULL || sg_utf8_valid(s, len = strlen(s)))
		return s;
	for (size_t i = 0; i < len;) {
		size_t k = sg_utf8_seq((const unsigned char *)s + i, len - i);
		out += k ? k : 3;
		i += k ? k : 1;
	}
	char *p = sg_arena_alloc(a, out + 1), *w = p;
	if (p == NULL)
		return "(text not valid UTF-8)";
	for (size_t i = 0; i < len;) {
		size_t k = sg_utf8_seq((const unsigned char *)s + i, len - i);
		if (k == 0) {
			memcpy(w, repl, 3);
			w += 3;
			i++;
		} else {
			memcpy(w, s + i, k);
			w += k;
			i += k;
		}
	}
	*w = '\0';
	return p;
}
