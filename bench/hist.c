/*
 * hist.c - the log-linear histogram of hist.h.
 */
#include "hist.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct bh_hist {
	_Atomic uint64_t counts[BH_BUCKETS]; /* per bucket */
	_Atomic uint64_t n;                  /* values recorded */
	_Atomic uint64_t sum;                /* their sum, ns (for the mean) */
	_Atomic uint64_t max;                /* largest value, exact */
	_Atomic uint64_t min;                /* smallest value, exact (UINT64_MAX when empty) */
};

/* Bucket of v: v itself below BH_SUB; else (shift + 1) * BH_SUB + the BH_SUB_BITS bits under
 * the leading one. */
static unsigned
bucket_of(uint64_t v)
{
	if (v < BH_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - BH_SUB_BITS;
	unsigned b = (shift + 1) * BH_SUB + (unsigned)((v >> shift) - BH_SUB);
	return b < BH_BUCKETS ? b : BH_BUCKETS - 1;
}

/* Lowest value and width of bucket b. */
static void
bucket_range(unsigned b, uint64_t *lo, uint64_t *width)
{
	if (b < BH_SUB) {
		*lo = b;
		*width = 1;
		return;
	}
	unsigned shift = b / BH_SUB - 1;
	*lo = (uint64_t)(BH_SUB + b % BH_SUB) << shift;
	*width = (uint64_t)1 << shift;
}

bh_hist *
bh_new(void)
{
	bh_hist *h = calloc(1, sizeof(*h));
	if (h != NULL)
		bh_reset(h);
	return h;
}

void
bh_free(bh_hist *h)
{
	free(h);
}

void
bh_reset(bh_hist *h)
{
	for (unsigned i = 0; i < BH_BUCKETS; i++)
		atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
	atomic_store(&h->n, 0);
	atomic_store(&h->sum, 0);
	atomic_store(&h->max, 0);
	atomic_store(&h->min, UINT64_MAX);
}

void
bh_record(bh_hist *h, uint64_t ns)
{
	atomic_fetch_add_explicit(&h->counts[bucket_of(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, ns, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (ns > m && !atomic_compare_exchange_weak_explicit(
	                         &h->max, &m, ns, memory_order_relaxed, memory_order_relaxed))
		;
	m = atomic_load_explicit(&h->min, memory_order_relaxed);
	while (ns < m && !atomic_compare_exchange_weak_explicit(
	                         &h->min, &m, ns, memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t
bh_quantile(const bh_hist *h, double q)
{
	uint64_t n = atomic_load(&h->n);
	if (n == 0)
		return 0;
	/* the rank of the value wanted, 1-based: ceil(q * n), at least 1 */
	uint64_t rank = (uint64_t)(q * (double)n);
	if ((double)rank < q * (double)n)
		rank++;
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	uint64_t mn = atomic_load(&h->min), mx = atomic_load(&h->max);
	for (unsigned b = 0; b < BH_BUCKETS; b++) {
		seen += atomic_load_explicit(&h->counts[b], memory_order_relaxed);
		if (seen >= rank) {
			uint64_t lo, w;
			bucket_range(b, &lo, &w);
			uint64_t v = lo + w / 2;
			return v < mn ? mn : v > mx ? mx : v;
		}
	}
	return mx;
}

uint64_t
bh_count(const bh_hist *h)
{
	return atomic_load(&h->n);
}

double
bh_mean(const bh_hist *h)
{
	uint64_t n = atomic_load(&h->n);
	return n ? (double)atomic_load(&h->sum) / (double)n : 0.0;
}

void
bh_merge(bh_hist *dst, const bh_hist *src)
{
	for (unsigned i = 0; i < BH_BUCKETS; i++)
		atomic_fetch_add(&dst->counts[i], atomic_load(&src->counts[i]));
	atomic_fetch_add(&dst->n, atomic_load(&src->n));
	atomic_fetch_add(&dst->sum, atomic_load(&src->sum));
	if (atomic_load(&src->max) > atomic_load(&dst->max))
		atomic_store(&dst->max, atomic_load(&src->max));
	if (atomic_load(&src->min) < atomic_load(&dst->min))
		atomic_store(&dst->min, atomic_load(&src->min));
}

uint64_t
bh_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bh_json(const bh_hist *h, FILE *f)
{
	uint64_t n = atomic_load(&h->n);
	fprintf(f,
	        "\"n\": %llu, \"mean_us\": %.2f, \"min_us\": %.2f, \"p50_us\": %.2f, "
	        "\"p90_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f",
	        (unsigned long long)n, bh_mean(h) / 1e3,
	        n ? (double)atomic_load(&h->min) / 1e3 : 0.0, (double)bh_quantile(h, 0.5) / 1e3,
	        (double)bh_quantile(h, 0.9) / 1e3, (double)bh_quantile(h, 0.99) / 1e3,
	        (double)bh_quantile(h, 0.999) / 1e3, (double)atomic_load(&h->max) / 1e3);
}

void
bh_print(const bh_hist *h, const char *label, FILE *f)
{
	fprintf(f, "%s: n=%llu p50=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus mean=%.1fus\n", label,
	        (unsigned long long)atomic_load(&h->n), (double)bh_quantile(h, 0.5) / 1e3,
	        (double)bh_quantile(h, 0.99) / 1e3, (double)bh_quantile(h, 0.999) / 1e3,
	        (double)atomic_load(&h->max) / 1e3, bh_mean(h) / 1e3);
}
