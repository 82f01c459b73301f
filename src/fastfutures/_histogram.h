/* A log-bucket histogram of durations, written under the GIL without a lock.
 *
 * A duration in nanoseconds v falls in bucket v for v < 8; above, each power
 * of two [2^e, 2^(e+1)) is split into 8 equal sub-buckets, so a bucket's
 * width is at most 1/8 of its lower bound (a quantile read from it is within
 * ~6% of the truth).  Every power of two of nanoseconds is a bucket boundary,
 * which lets exporters give exact cumulative counts at those bounds.
 * Recording is a count_leading_zeros, a shift and four stores.
 */
#ifndef FASTFUTURES_HISTOGRAM_H
#define FASTFUTURES_HISTOGRAM_H

#include <stdint.h>

#define FFH_SUB_BITS 3
#define FFH_SUB (1 << FFH_SUB_BITS)
/* Exponents 3..63 above the 8 exact buckets. */
#define FFH_BUCKETS (FFH_SUB + (64 - FFH_SUB_BITS) * FFH_SUB)

typedef struct {
    uint64_t counts[FFH_BUCKETS];
    uint64_t count;
    double sum;         /* seconds */
    double max;         /* seconds */
} ffh_histogram;

#if defined(_MSC_VER)
#  include <intrin.h>
static inline int ffh_log2(uint64_t v) {
    unsigned long i;
    _BitScanReverse64(&i, v);
    return (int)i;
}
#else
static inline int ffh_log2(uint64_t v) { return 63 - __builtin_clzll(v); }
#endif

static inline int ffh_bucket_of(uint64_t ns) {
    int e;
    if (ns < FFH_SUB) return (int)ns;
    e = ffh_log2(ns);
    return (e - FFH_SUB_BITS + 1) * FFH_SUB + (int)((ns >> (e - FFH_SUB_BITS)) & (FFH_SUB - 1));
}

/* The bucket's bounds in seconds: [lower, upper). */
static inline double ffh_bucket_lower(int index) {
    int e, m;
    if (index < FFH_SUB) return index * 1e-9;
    e = index / FFH_SUB + FFH_SUB_BITS - 1;
    m = index % FFH_SUB;
    return (double)((uint64_t)(FFH_SUB + m) << (e - FFH_SUB_BITS)) * 1e-9;
}

static inline double ffh_bucket_upper(int index) {
    if (index + 1 >= FFH_BUCKETS) return 18446744073.709553;  /* 2^64 ns */
    return ffh_bucket_lower(index + 1);
}

static inline void ffh_record(ffh_histogram *h, double seconds) {
    uint64_t ns;
    if (!(seconds > 0)) seconds = 0;        /* clock steps, NaN */
    ns = seconds < 1.8e10 ? (uint64_t)(seconds * 1e9) : UINT64_MAX;
    h->counts[ffh_bucket_of(ns)]++;
    h->count++;
    h->sum += seconds;
    if (seconds > h->max) h->max = seconds;
}

#endif
