/* tb_events.c — TensorBoard scalar summaries: an event file of TFRecords
 * (u64 length, masked CRC32C of the length, the bytes, masked CRC32C of the
 * bytes; little-endian) each holding an Event message, encoded by protobuf-c
 * from graft's minimal schema (tb_event.proto, generated at build time). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "report/report.h"
#include "tb_event.pb-c.h"

struct gr_tb_writer {
    FILE *f;
    char path[4400];
};

uint32_t gr_crc32c(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));   /* reflected Castagnoli */
    }
    return ~c;
}

static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

static void le32(uint8_t *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i)); }

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

/* Encodes ev and appends it as one TFRecord; flushes. */
static gr_status write_event(gr_tb_writer *w, const GraftTb__Event *ev, gr_error *err) {
    size_t n = graft_tb__event__get_packed_size(ev);
    uint8_t *buf = malloc(n + 16);
    if (!buf) return gr_error_set(err, GR_ERR_NOMEM, "out of memory (TensorBoard event)");
    graft_tb__event__pack(ev, buf + 12);
    uint64_t len = n;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    le32(buf + 8, masked(gr_crc32c(buf, 8)));
    le32(buf + 12 + n, masked(gr_crc32c(buf + 12, n)));
    bool ok = fwrite(buf, 1, n + 16, w->f) == n + 16 && fflush(w->f) == 0;
    free(buf);
    return ok ? GR_OK : gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", w->path, strerror(errno));
}

gr_tb_writer *gr_tb_open(const char *dir, gr_error *err) {
    if (gr_report_mkdir(dir, err) != GR_OK) return NULL;
    gr_tb_writer *w = calloc(1, sizeof *w);
    if (!w) { gr_error_set(err, GR_ERR_NOMEM, "out of memory (TensorBoard writer)"); return NULL; }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    /* TensorBoard finds files by "tfevents" in the name and orders them by it */
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%ld.graft", dir, (long long)time(NULL), host,
             (long)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot create the event file: %s", w->path, strerror(errno));
        free(w);
        return NULL;
    }
    GraftTb__Event ev = GRAFT_TB__EVENT__INIT;
    ev.has_wall_time = 1;
    ev.wall_time = wall_now();
    ev.has_step = 1;
    ev.step = 0;
    ev.file_version = (char *)"brain.Event:2";
    if (write_event(w, &ev, err) != GR_OK) { gr_tb_close(w); return NULL; }
    return w;
}

gr_status gr_tb_scalar(gr_tb_writer *w, const char *tag, int64_t step, double value, gr_error *err) {
    GraftTb__SummaryValue v = GRAFT_TB__SUMMARY_VALUE__INIT;
    v.tag = (char *)tag;
    v.has_simple_value = 1;
    v.simple_value = (float)value;
    GraftTb__SummaryValue *vs[1] = {&v};
    GraftTb__Summary s = GRAFT_TB__SUMMARY__INIT;
    s.n_value = 1;
    s.value = vs;
    GraftTb__Event ev = GRAFT_TB__EVENT__INIT;
    ev.has_wall_time = 1;
    ev.wall_time = wall_now();
    ev.has_step = 1;
    ev.step = step;
    ev.summary = &s;
    return write_event(w, &ev, err);
}

const char *gr_tb_path(const gr_tb_writer *w) { return w->path; }

void gr_tb_close(gr_tb_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w);
}
