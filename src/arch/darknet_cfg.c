/* darknet_cfg.c — reading a darknet .cfg file into sections of key=value
 * pairs (whitespace is dropped everywhere and lines starting with '#' or ';'
 * are comments, as darknet does), and the typed lookups of a section's keys
 * (darknet.c builds the layers with them).                                 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "arch/darknet_cfg.h"

void dk_cfg_free(dk_cfg *c) {
    for (int i = 0; i < c->n_sec; i++) {
        for (int k = 0; k < c->sec[i].n_kv; k++) {
            free(c->sec[i].kv[k].key);
            free(c->sec[i].kv[k].val);
        }
        free(c->sec[i].kv);
        free(c->sec[i].name);
    }
    free(c->sec);
}

/* Removes every whitespace character in place (darknet's strip()). */
static void strip_ws(char *s) {
    char *o = s;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\v' && *s != '\f')
            *o++ = *s;
    *o = 0;
}

/* Reads the file into c->sec.  GR_OK or an error naming the file and line. */
gr_status dk_cfg_read(dk_cfg *c) {
    FILE *f = fopen(c->path, "r");
    if (!f)
        return gr_error_set(c->err, GR_ERR_IO, "%s: cannot open darknet cfg: %s", c->path,
                            strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    gr_status st = GR_OK;
    while (st == GR_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        strip_ws(line);
        if (!line[0] || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            size_t n = strlen(line);
            if (n < 3 || line[n - 1] != ']') {
                st = gr_error_set(c->err, GR_ERR_FORMAT, "%s:%d: malformed section header '%s'",
                                  c->path, lineno, line);
                break;
            }
            if (c->n_sec == c->cap_sec) {
                int nc = c->cap_sec ? 2 * c->cap_sec : 64;
                dk_section *ns = gr_realloc(c->sec, (size_t)nc * sizeof *ns, c->err);
                if (!ns) { st = GR_ERR_NOMEM; break; }
                c->sec = ns;
                c->cap_sec = nc;
            }
            dk_section *s = &c->sec[c->n_sec];
            memset(s, 0, sizeof *s);
            line[n - 1] = 0;
            s->name = gr_strdup(line + 1, c->err);
            if (!s->name) { st = GR_ERR_NOMEM; break; }
            s->line = lineno;
            c->n_sec++;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq || eq == line) {
            st = gr_error_set(c->err, GR_ERR_FORMAT, "%s:%d: expected key=value, got '%s'",
                              c->path, lineno, line);
            break;
        }
        if (c->n_sec == 0) {
            st = gr_error_set(c->err, GR_ERR_FORMAT,
                              "%s:%d: '%s' before any section (the file must start with [net])",
                              c->path, lineno, line);
            break;
        }
        dk_section *s = &c->sec[c->n_sec - 1];
        if (s->n_kv == s->cap_kv) {
            int nc = s->cap_kv ? 2 * s->cap_kv : 16;
            dk_kv *nk = gr_realloc(s->kv, (size_t)nc * sizeof *nk, c->err);
            if (!nk) { st = GR_ERR_NOMEM; break; }
            s->kv = nk;
            s->cap_kv = nc;
        }
        *eq = 0;
        dk_kv *kv = &s->kv[s->n_kv];
        kv->key = gr_strdup(line, c->err);
        kv->val = gr_strdup(eq + 1, c->err);
        kv->line = lineno;
        kv->used = false;
        s->n_kv++;
        if (!kv->key || !kv->val) st = GR_ERR_NOMEM;
    }
    free(line);
    if (st == GR_OK && ferror(f))
        st = gr_error_set(c->err, GR_ERR_IO, "%s: read error: %s", c->path, strerror(errno));
    fclose(f);
    return st;
}

/* ------------------------------------------------------------- key lookup */

/* Error about the current section: "file:line: [sec] (layer i): ...". */
gr_status dk_error(dk_cfg *c, gr_status code, int line, const char *what) {
    if (c->layer >= 0)
        return gr_error_set(c->err, code, "%s:%d: [%s] (layer %d): %s", c->path, line,
                            c->cur->name, c->layer, what);
    return gr_error_set(c->err, code, "%s:%d: [%s]: %s", c->path, line, c->cur->name, what);
}

dk_kv *dk_find(dk_cfg *c, const char *key) {
    dk_section *s = c->cur;
    for (int k = 0; k < s->n_kv; k++)
        if (!strcmp(s->kv[k].key, key)) { s->kv[k].used = true; return &s->kv[k]; }
    return NULL;
}

/* Reads integer `key` (default def) into *out; checks *out >= lo. */
gr_status dk_int(dk_cfg *c, const char *key, int def, int lo, int *out) {
    dk_kv *kv = dk_find(c, key);
    if (!kv) { *out = def; return GR_OK; }
    char *end;
    errno = 0;
    long v = strtol(kv->val, &end, 10);
    char what[256];
    if (!kv->val[0] || *end) {
        snprintf(what, sizeof what, "%s=%s is not an integer", key, kv->val);
        return dk_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    if (errno == ERANGE || v < -1000000000L || v > 1000000000L) {
        snprintf(what, sizeof what, "%s=%s is out of range (%d to 1000000000)", key, kv->val, lo);
        return dk_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    if (v < lo) {
        snprintf(what, sizeof what, "%s=%ld must be >= %d", key, v, lo);
        return dk_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    *out = (int)v;
    return GR_OK;
}

gr_status dk_float(dk_cfg *c, const char *key, float def, float *out) {
    dk_kv *kv = dk_find(c, key);
    if (!kv) { *out = def; return GR_OK; }
    char *end;
    errno = 0;
    float v = strtof(kv->val, &end);
    if (!kv->val[0] || *end || errno || v != v) {
        char what[256];
        snprintf(what, sizeof what, "%s=%s is not a number", key, kv->val);
        return dk_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    *out = v;
    return GR_OK;
}

/* An integer key that graft only supports at one value (e.g. dilation=1). */
gr_status dk_int_fixed(dk_cfg *c, const char *key, int want) {
    int v;
    gr_status st = dk_int(c, key, want, -1000000000, &v);
    if (st != GR_OK) return st;
    if (v != want) {
        char what[256];
        snprintf(what, sizeof what, "%s=%d is not supported (only %d)", key, v, want);
        return dk_error(c, GR_ERR_UNSUPPORTED, dk_find(c, key)->line, what);
    }
    return GR_OK;
}

/* Darknet activation names -> graft's. */
gr_status dk_act(dk_cfg *c, const char *def, gr_act *act, float *alpha) {
    dk_kv *kv = dk_find(c, "activation");
    const char *v = kv ? kv->val : def;
    *alpha = 0;
    if (!strcmp(v, "leaky")) { *act = GR_ACT_LEAKY; *alpha = 0.1f; }
    else if (!strcmp(v, "relu")) *act = GR_ACT_RELU;
    else if (!strcmp(v, "linear")) *act = GR_ACT_LINEAR;
    else if (!strcmp(v, "logistic")) *act = GR_ACT_SIGMOID;
    else if (!strcmp(v, "tanh")) *act = GR_ACT_TANH;
    else {
        char what[256];
        snprintf(what, sizeof what, "activation=%s is not supported (leaky, relu, linear, "
                 "logistic, tanh)", v);
        return dk_error(c, GR_ERR_UNSUPPORTED, kv ? kv->line : c->cur->line, what);
    }
    return GR_OK;
}

/* Marks keys that only matter for training as used. */
void dk_ignore(dk_cfg *c, const char *const *keys) {
    for (; *keys; keys++) dk_find(c, *keys);
}

gr_status dk_check_unused(dk_cfg *c) {
    for (int k = 0; k < c->cur->n_kv; k++)
        if (!c->cur->kv[k].used) {
            char what[256];
            snprintf(what, sizeof what, "unknown key '%s'", c->cur->kv[k].key);
            return dk_error(c, GR_ERR_FORMAT, c->cur->kv[k].line, what);
        }
    return GR_OK;
}
