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

/* Appends the key bytes of join key f's value v (a string's bytes, an integer's decimal
 * text, whether sent as a number or a string) — the same bytes ingest keys rows by.
 * Returns 0, 1 when v is null (nothing appended), or SL_EINVAL with msg. */
struct sl_field;
struct sl_json;
int sl_join_part(const struct sl_field *f, const struct sl_json *v, struct sl_buf *out,
                 char *msg, size_t cap);

/* Online row keys and values of attribute views, shared by ingest and serving.
 * Key: 'V', the view's 8-byte prefix, then each join key value as u32 length + bytes. */
void sl_row_key(struct sl_buf *out, const struct sl_view *v, const char *const *vals,
                const size_t *lens);

#endif
