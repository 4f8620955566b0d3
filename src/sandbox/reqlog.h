/*
 * reqlog.h - the record of requests received, for tests (GET /__sandbox/requests).
 *
 * A ring of JSON object texts, capped both in entries and in bytes: when either cap is reached
 * the oldest entries are dropped (and counted), so the record cannot grow without bound.
 * Every function is thread-safe.
 */
#ifndef SBX_REQLOG_H
#define SBX_REQLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sbx_reqlog sbx_reqlog;

/* Creates an empty record. Returns NULL on no memory. */
sbx_reqlog *sbx_reqlog_new(size_t max_entries, size_t max_bytes);

/* Frees the record and every entry. NULL is a no-op. */
void sbx_reqlog_free(sbx_reqlog *l);

/*
 * Appends one entry. obj is a malloc'd JSON object text "{...}" of len bytes; the record takes
 * ownership in every case (it is freed if it cannot be kept). The entry is given the next
 * sequence number, emitted as its first member "seq".
 */
void sbx_reqlog_add(sbx_reqlog *l, char *obj, size_t len);

/* The whole record as one JSON array, oldest first. New malloc'd text (caller frees), or NULL. */
char *sbx_reqlog_dump(sbx_reqlog *l, size_t *len);

/* Empties the record. Returns how many entries it held. Sequence numbers keep counting. */
size_t sbx_reqlog_clear(sbx_reqlog *l);

/* Entries held, entries dropped for the caps, and entries ever added. */
void sbx_reqlog_stats(sbx_reqlog *l, size_t *held, uint64_t *dropped, uint64_t *total);

#endif /* SBX_REQLOG_H */
