/* fuzz_fetch.c — what graft's download code does with what a server or a
 * mirror sends, fed from a buffer (no network): the response-header
 * callback (Content-Range / a new response after a redirect), the body
 * callback (resume at an offset: the server honours the range, ignores it
 * or answers from another byte), the progress line (sizes the server
 * declares), the digest check and commit of the finished file, and a
 * mirror's SHA256SUMS lookup (mirror.c).  src/hub/fetch.c is included so that its
 * static callbacks can be called; libgraft.a's fetch.o is then not linked.
 *
 * Input: byte 0 flags (bit 0: resume at an offset, bit 1: draw as on a
 * tty), bytes 1..16 two int64 (declared total, bytes now) for the progress
 * line, then up to four parts separated by NUL bytes: header lines
 * (separated by '\n'), the body, the expected digest, a SHA256SUMS file.  */
#include "../src/hub/fetch.c"
#include "fuzz.h"

static const uint8_t *part(const uint8_t **p, const uint8_t *end, size_t *n) {
    const uint8_t *s = *p, *z = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    *n = z ? (size_t)(z - s) : (size_t)(end - s);
    *p = z ? z + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static CURL *curl;
    if (!curl && !(curl = curl_easy_init())) abort();
    if (size < 17) return 0;
    uint8_t flags = data[0];
    int64_t total, now;
    memcpy(&total, data + 1, 8);
    memcpy(&now, data + 9, 8);
    const uint8_t *p = data + 17, *end = data + size;
    size_t nh, nb, nd, ns;
    const uint8_t *hdr = part(&p, end, &nh), *body = part(&p, end, &nb), *dig = part(&p, end, &nd),
                  *sums = part(&p, end, &ns);

    char partp[256], dest[256];
    fuzz_path(partp, sizeof partp, "file.part");
    fuzz_path(dest, sizeof dest, "file");
    fuzz_write(partp, "0123456789", 10);   /* a partial download of 10 bytes */
    int fd = open(partp, O_WRONLY | O_APPEND);
    if (fd < 0) abort();
    gr_error err = {0};
    gr_fetch_opts o = {.quiet = !(flags & 2)};
    dl_ctx d = {.curl = curl, .fd = fd, .url = "http://127.0.0.1/file", .part = partp, .label = "file",
                .offset = (flags & 1) ? 10 : 0, .range_start = -1, .err = &err, .o = &o,
                .tty = (flags & 2) != 0};
    if (!(flags & 1)) (void)!ftruncate(fd, 0);
    /* header lines, as libcurl delivers them (one call per line, with its \r\n) */
    for (size_t i = 0; i < nh;) {
        size_t j = i;
        while (j < nh && hdr[j] != '\n') j++;
        if (j < nh) j++;
        char *line = malloc(j - i);   /* exactly the line: no terminator, as libcurl */
        if (!line) abort();
        memcpy(line, hdr + i, j - i);
        if (header_cb(line, 1, j - i, &d) != j - i) abort();
        free(line);
        i = j;
    }
    /* the body in two deliveries */
    size_t half = nb / 2;
    char *b = malloc(nb ? nb : 1);
    if (!b) abort();
    memcpy(b, body, nb);
    if (write_cb(b, 1, half, &d) == half && d.st == GR_OK) write_cb(b + half, 1, nb - half, &d);
    free(b);
    if (d.st != GR_OK) fuzz_check_error(&err, "fetch write_cb");
    progress_cb(&d, (curl_off_t)total, (curl_off_t)now, 0, 0);
    d.t_last = -1e9;
    progress_cb(&d, (curl_off_t)total, (curl_off_t)now, 0, 0);
    close(fd);
    /* the digest check and commit */
    char digest[160];
    size_t k = nd < sizeof digest - 1 ? nd : sizeof digest - 1;
    memcpy(digest, dig, k);
    digest[k] = 0;
    memset(&err, 0, sizeof err);
    if (verify_and_commit(partp, dest, nd ? digest : NULL, d.url, "the test", &o, &err) != GR_OK)
        fuzz_check_error(&err, "verify_and_commit");
    unlink(dest);
    unlink(partp);
    /* a mirror's SHA256SUMS */
    char sp[256], hex[GR_DIGEST_HEX_MAX];
    fuzz_path(sp, sizeof sp, "SHA256SUMS");
    fuzz_write(sp, sums, ns);
    (void)gr_fetch_mirror_sum(fuzz_dir(), "weights/darknet-tiny/tiny.cfg", hex);
    return 0;
}
