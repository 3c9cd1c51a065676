/* digest.h — md5 / sha256 of a buffer, a stream or a file (OpenSSL EVP).
 * Digests are returned as lowercase hex strings (md5: 32 chars, sha256: 64). */
#ifndef GRAFT_IO_DIGEST_H
#define GRAFT_IO_DIGEST_H
#include <stddef.h>
#include <stdio.h>
#include "graft.h"

typedef enum { GR_DIGEST_MD5 = 0, GR_DIGEST_SHA256 } gr_digest_kind;

#define GR_DIGEST_HEX_MAX 65   /* 64 hex chars + NUL */

const char *gr_digest_name(gr_digest_kind k);            /* "md5" / "sha256" */
/* The kind a hex digest's length implies (32: md5, 64: sha256); -1 when neither. */
int gr_digest_kind_of_hex(const char *hex);

/* Incremental digest.  gr_digest_new returns NULL (err set) on failure;
 * gr_digest_final writes the hex digest to hex_out (>= GR_DIGEST_HEX_MAX bytes)
 * and frees the context (also on failure).                                  */
typedef struct gr_digest gr_digest;
gr_digest *gr_digest_new(gr_digest_kind k, gr_error *err);
gr_status gr_digest_update(gr_digest *d, const void *data, size_t n, gr_error *err);
gr_status gr_digest_final(gr_digest *d, char *hex_out, gr_error *err);
void gr_digest_free(gr_digest *d);

gr_status gr_digest_buf(gr_digest_kind k, const void *data, size_t n, char *hex_out,
                        gr_error *err);
/* Reads f to EOF.  `name` names the stream in error messages. */
gr_status gr_digest_stream(gr_digest_kind k, FILE *f, const char *name, char *hex_out,
                           gr_error *err);
gr_status gr_digest_file(gr_digest_kind k, const char *path, char *hex_out, gr_error *err);

/* Case-insensitive comparison of two hex digests (true when equal). */
int gr_digest_equal(const char *a, const char *b);
#endif
