/* Snappy decompression (the raw block format used by Parquet pages), written from the format
 * description: a varint uncompressed length, then literal and copy elements. */
#ifndef SL_SNAPPY_H
#define SL_SNAPPY_H

#include <stddef.h>

/* Reads the uncompressed length stored at the start of src[0..n) into *len.
 * Returns 0, or SL_ECORRUPT when the varint is cut short or exceeds 32 bits. Any thread. */
int sl_snappy_uncompressed_length(const void *src, size_t n, size_t *len);

/* Decompresses src[0..n) into dst[0..cap). The stored uncompressed length must equal cap
 * exactly and every element must stay within src and within what has been written, so a
 * corrupt or truncated block returns SL_ECORRUPT without touching memory outside dst.
 * Returns 0 or SL_ECORRUPT. Borrows both buffers. Any thread. */
int sl_snappy_decompress(const void *src, size_t n, void *dst, size_t cap);

#endif
