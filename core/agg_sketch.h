/* Approximate aggregations: HyperLogLog (approx_count_distinct) and a DDSketch-style
 * relative-error quantile sketch (approx_percentile), plus the 64-bit hash they use. Their
 * accuracy contracts are in agg.md. Internal to the engine: reached through agg.h's registry. */
#ifndef SL_AGG_SKETCH_H
#define SL_AGG_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"

#define SL_AGG_HLL_MIN_P 4
#define SL_AGG_HLL_MAX_P 16
#define SL_AGG_HLL_DEFAULT_P 8
#define SL_AGG_PCT_MIN_PRECISION 20
#define SL_AGG_PCT_MAX_PRECISION 500
#define SL_AGG_PCT_DEFAULT_PRECISION 100
/* Bucket span of one sign of the percentile sketch before its smallest magnitudes collapse. */
#define SL_AGG_PCT_MAX_BUCKETS 16384

extern const struct sl_agg_fn sl_agg_fn_approx_count_distinct;
extern const struct sl_agg_fn sl_agg_fn_approx_percentile;

/* A 64-bit hash of p[0..n) with a seed: 8-byte lanes multiplied and rotated into the state,
 * then a full avalanche finalizer; every input bit affects every output bit. Pure; any
 * thread. Stable across versions and platforms (it decides stored HyperLogLog registers). */
uint64_t sl_agg_hash64(const void *p, size_t n, uint64_t seed);

#endif
