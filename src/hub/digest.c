/* digest.c — md5 / sha256 through OpenSSL's EVP interface. */
#include "hub/digest.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct gr_digest {
    EVP_MD_CTX *ctx;
};

const char *gr_digest_name(gr_digest_kind k) { return k == GR_DIGEST_MD5 ? "md5" : "sha256"; }

int gr_digest_kind_of_hex(const char *hex) {
    if (!hex) return -1;
    size_t n = strlen(hex);
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)hex[i])) return -1;
    if (n == 32) return GR_DIGEST_MD5;
    if (n == 64) return GR_DIGEST_SHA256;
    return -1;
}

gr_digest *gr_digest_new(gr_digest_kind k, gr_error *err) {
    gr_digest *d = malloc(sizeof *d);
    if (!d) {
        gr_error_set(err, GR_ERR_NOMEM, "out of memory allocating a %s context", gr_digest_name(k));
        return NULL;
    }
    d->ctx = EVP_MD_CTX_new();
    const EVP_MD *md = k == GR_DIGEST_MD5 ? EVP_md5() : EVP_sha256();
    if (!d->ctx || !md || EVP_DigestInit_ex(d->ctx, md, NULL) != 1) {
        gr_digest_free(d);
        gr_error_set(err, GR_ERR_UNSUPPORTED, "OpenSSL cannot compute %s here", gr_digest_name(k));
        return NULL;
    }
    return d;
}

void gr_digest_free(gr_digest *d) {
    if (!d) return;
    EVP_MD_CTX_free(d->ctx);
    free(d);
}

gr_status gr_digest_update(gr_digest *d, const void *data, size_t n, gr_error *err) {
    if (n && EVP_DigestUpdate(d->ctx, data, n) != 1)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "OpenSSL digest update failed");
    return GR_OK;
}

gr_status gr_digest_final(gr_digest *d, char *hex_out, gr_error *err) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(d->ctx, md, &len) == 1 && len <= 32;
    gr_digest_free(d);
    hex_out[0] = 0;
    if (!ok) return gr_error_set(err, GR_ERR_UNSUPPORTED, "OpenSSL digest finalization failed");
    static const char hx[] = "0123456789abcdef";
    for (unsigned int i = 0; i < len; i++) {
        hex_out[2 * i] = hx[md[i] >> 4];
        hex_out[2 * i + 1] = hx[md[i] & 15];
    }
    hex_out[2 * len] = 0;
    return GR_OK;
}

gr_status gr_digest_buf(gr_digest_kind k, const void *data, size_t n, char *hex_out,
                        gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_digest *d = gr_digest_new(k, err);
    if (!d) return err->code;
    if (gr_digest_update(d, data, n, err) != GR_OK) {
        gr_digest_free(d);
        return err->code;
    }
    return gr_digest_final(d, hex_out, err);
}

gr_status gr_digest_stream(gr_digest_kind k, FILE *f, const char *name, char *hex_out,
                           gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_digest *d = gr_digest_new(k, err);
    if (!d) return err->code;
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        gr_digest_free(d);
        return gr_error_set(err, GR_ERR_NOMEM, "out of memory hashing %s", name);
    }
    size_t got;
    gr_status st = GR_OK;
    while ((got = fread(buf, 1, CHUNK, f)) > 0)
        if ((st = gr_digest_update(d, buf, got, err))) break;
    free(buf);
    if (st == GR_OK && ferror(f))
        st = gr_error_set(err, GR_ERR_IO, "%s: read error while hashing", name);
    if (st != GR_OK) {
        gr_digest_free(d);
        return st;
    }
    return gr_digest_final(d, hex_out, err);
}

gr_status gr_digest_file(gr_digest_kind k, const char *path, char *hex_out, gr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gr_status st = gr_digest_stream(k, f, path, hex_out, err);
    fclose(f);
    return st;
}

int gr_digest_equal(const char *a, const char *b) {
    if (!a || !b || strlen(a) != strlen(b)) return 0;
    for (; *a; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return 1;
}
