/* common.c — option parsing helpers shared by the subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int cli_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, int *h, int *w) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (!x) x = strchr(buf, 'X');
    if (!x) {
        if (cli_parse_int(buf, h) || *h <= 0) return -1;
        *w = *h;
        return 0;
    }
    *x = 0;
    if (cli_parse_int(buf, h) || cli_parse_int(x + 1, w) || *h <= 0 || *w <= 0) return -1;
    return 0;
}

gr_model *cli_build_base(const char *base, int h, int w, bool include_top, gr_error *err) {
    if (!strcmp(base, "vgg16")) {
        if (!h) { h = 224; w = 224; }
        return gr_vgg16(h, w, include_top, err);
    }
    if (!strncmp(base, "darknet:", 8)) return gr_darknet_load_cfg(base + 8, h, w, err);
    gr_error_set(err, GR_ERR_ARG, "unknown base '%s' (known: vgg16, darknet:PATH.cfg)", base);
    return NULL;
}
