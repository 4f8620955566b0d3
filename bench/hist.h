/*
 * hist.h - a log-linear latency histogram (HdrHistogram's layout, shrunk), shared by every
 * benchmark tool (loadgen, curl_direct, the gRPC client) so that their percentiles are computed
 * the same way.
 *
 * Values are nanoseconds. Below 2^BH_SUB_BITS each value has its own bucket; above, every power
 * of two is cut into 2^BH_SUB_BITS linear buckets, so a reported value is within 1/128 (0.8 %)
 * of the true one. Up to 2^42 ns (73 min); larger values land in the last bucket.
 *
 * bh_record may be called from any number of threads at once (relaxed atomics: counts are
 * exact, a reader racing with writers sees some recent state). Everything else is for one
 * thread at a time, after the writers have stopped.
 */
#ifndef SG_BENCH_HIST_H
#define SG_BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_SUB_BITS 7
#define BH_SUB      (1u << BH_SUB_BITS)
#define BH_MAX_BITS 42
#define BH_BUCKETS  ((BH_MAX_BITS - BH_SUB_BITS + 1) * BH_SUB)

typedef struct bh_hist bh_hist; /* opaque: counts, n, sum, min, max (atomics) */

/* A new, empty histogram (calloc'd; ~36 KiB), or NULL. Owned by the caller: bh_free. */
bh_hist *bh_new(void);
void bh_free(bh_hist *h);
/* Empties h (not safe against concurrent bh_record). */
void bh_reset(bh_hist *h);
/* Adds one value in ns. Any thread, concurrently. */
void bh_record(bh_hist *h, uint64_t ns);
/* The value at quantile q (0..1): the midpoint of the bucket holding it, clamped to [min,max];
 * 0 when empty. */
uint64_t bh_quantile(const bh_hist *h, double q);
/* Values recorded. */
uint64_t bh_count(const bh_hist *h);
/* Mean in ns, 0 when empty. */
double bh_mean(const bh_hist *h);
/* Adds every count of src into dst. */
void bh_merge(bh_hist *dst, const bh_hist *src);

/* Monotonic clock in ns. */
uint64_t bh_now_ns(void);

/*
 * Writes the common JSON members (no braces): "n", "mean_us", "min_us", "p50_us", "p90_us",
 * "p99_us", "p999_us", "max_us", each followed by a comma except the last.
 */
void bh_json(const bh_hist *h, FILE *f);

/* One human line: n, p50, p99, p99.9, max in microseconds. */
void bh_print(const bh_hist *h, const char *label, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* SG_BENCH_HIST_H */
