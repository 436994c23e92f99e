/* Online serving: the FeatureService HTTP API (get-features, get-features-batch, metadata). */
#ifndef SL_SERVE_H
#define SL_SERVE_H

#include <stddef.h>
#include <stdint.h>

struct sl_node;
struct sl_http_req;
struct sl_principal;
struct sl_view;
struct sl_buf;

enum sl_serve_call { SL_SERVE_GET, SL_SERVE_BATCH, SL_SERVE_METADATA };

/* Per HTTP worker: the buffers a read reuses from one request to the next, and a cache of
 * aggregate values of read_cache bytes (0: none). */
struct sl_serve_scratch;
struct sl_serve_scratch *sl_serve_scratch_new(size_t read_cache);
void sl_serve_scratch_free(struct sl_serve_scratch *sc);

/* Handles one FeatureService call. Loop thread. */
void sl_serve_handle(struct sl_node *n, struct sl_http_req *r, enum sl_serve_call call,
                     const struct sl_principal *p);

#endif
