/*
 * redact.c - see redact.h.
 */
#define _GNU_SOURCE /* memmem */
#include "redact.h"

#include <string.h>

static const char withheld[] = "[text withheld: it held a secret, and there was no memory to "
                               "redact it]";

bool
sg_redact_found(const void *p, size_t len, const char *const *secrets, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t sl = secrets[i] != NULL ? strlen(secrets[i]) : 0;
		if (sl >= SG_REDACT_MIN && sl <= len && memmem(p, len, secrets[i], sl) != NULL)
			return true;
	}
	return false;
}

const char *
sg_redact(sg_arena *a, const char *text, const char *const *secrets, size_t n)
{
	if (text == NULL || !sg_redact_found(text, strlen(text), secrets, n))
		return text;
	const char *cur = text;
	for (size_t i = 0; i < n; i++) {
		size_t sl = secrets[i] != NULL ? strlen(secrets[i]) : 0;
		if (sl < SG_REDACT_MIN || strstr(cur, secrets[i]) == NULL)
			continue;
		/* count, then build: each occurrence becomes SG_REDACTED */
		size_t hits = 0, rl = sizeof(SG_REDACTED) - 1, len = strlen(cur);
		for (const char *p = cur; (p = strstr(p, secrets[i])) != NULL; p += sl)
			hits++;
		char *out = sg_arena_alloc(a, len - hits * sl + hits * rl + 1), *o = out;
		if (out == NULL)
			return withheld;
		const char *src = cur, *q;
		while ((q = strstr(src, secrets[i])) != NULL) {
			memcpy(o, src, (size_t)(q - src));
			o += q - src;
			memcpy(o, SG_REDACTED, rl);
			o += rl;
			src = q + sl;
		}
		strcpy(o, src); /* what follows the last one */
		cur = out;
	}
	return cur;
}

/* One string field's value through sg_redact; true when it changed. */
static bool
redact_str(char **s, sg_arena *a, const char *const *secrets, size_t n)
{
	const char *r = sg_redact(a, *s, secrets, n);
	if (r == *s)
		return false;
	*s = (char *)r;
	return true;
}

size_t
sg_redact_message(ProtobufCMessage *m, sg_arena *a, const char *const *secrets, size_t n)
{
	size_t changed = 0;
	if (m == NULL)
		return 0;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *at = (char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		/* a oneof's members share their storage: only the one set is what it says */
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t count = *(size_t *)((char *)m + f->quantifier_offset);
			void **items = *(void ***)at;
			for (size_t k = 0; k < count && items != NULL; k++) {
				if (f->type == PROTOBUF_C_TYPE_STRING)
					changed += redact_str((char **)&items[k], a, secrets, n);
				else
					changed += sg_redact_message(items[k], a, secrets, n);
			}
		} else if (f->type == PROTOBUF_C_TYPE_STRING) {
			changed += redact_str((char **)at, a, secrets, n);
		} else {
			changed += sg_redact_message(*(ProtobufCMessage **)at, a, secrets, n);
		}
	}
	return changed;
}
