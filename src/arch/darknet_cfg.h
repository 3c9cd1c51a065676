/* darknet_cfg.h — a darknet .cfg file read into sections of key=value
 * pairs (darknet_cfg.c), and the typed key lookups darknet.c builds the
 * layers with.  Every error names "file:line: [section] (layer i)".       */
#ifndef GRAFT_ARCH_DARKNET_CFG_H
#define GRAFT_ARCH_DARKNET_CFG_H
#include "graft.h"

typedef struct {
    char *key, *val;
    int line;
    bool used;
} dk_kv;

typedef struct {
    char *name;          /* without brackets */
    int line;
    dk_kv *kv;
    int n_kv, cap_kv;
} dk_section;

typedef struct {
    const char *path;
    dk_section *sec;
    int n_sec, cap_sec;
    gr_error *err;
    /* the section being built, for error messages */
    dk_section *cur;
    int layer;
} dk_cfg;

/* Reads c->path into c->sec (whitespace dropped, '#'/';' comments): GR_OK
 * or an error naming the file and line.  dk_cfg_free frees the sections.  */
gr_status dk_cfg_read(dk_cfg *c);
void dk_cfg_free(dk_cfg *c);

/* The lookups work on the current section c->cur (layer c->layer, -1 for
 * [net]) and mark the keys they read as used.                              */
/* An error about the current section: "file:line: [sec] (layer i): what". */
gr_status dk_error(dk_cfg *c, gr_status code, int line, const char *what);
dk_kv *dk_find(dk_cfg *c, const char *key);   /* NULL when absent */
/* Integer `key` (default def) into *out; checks *out >= lo. */
gr_status dk_int(dk_cfg *c, const char *key, int def, int lo, int *out);
gr_status dk_float(dk_cfg *c, const char *key, float def, float *out);
/* An integer key graft only supports at one value (e.g. dilation=1). */
gr_status dk_int_fixed(dk_cfg *c, const char *key, int want);
/* activation= (default def) as graft's activation and its alpha. */
gr_status dk_act(dk_cfg *c, const char *def, gr_act *act, float *alpha);
void dk_ignore(dk_cfg *c, const char *const *keys);   /* training-only keys: marked used */
gr_status dk_check_unused(dk_cfg *c);                 /* a key nothing read is an error */

#endif
