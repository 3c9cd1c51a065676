/* darknet_cfg.h — a darknet .cfg file as sections of key=value pairs
 * (private to arch/darknet.c, which builds the network from them).
 * Whitespace is dropped everywhere and lines starting with '#' or ';' are
 * comments, as darknet does; every error names "file:line: [section]".   */
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

void dk_cfg_free(dk_cfg *c);
gr_status dk_cfg_read(dk_cfg *c);
gr_status dk_sec_error(dk_cfg *c, gr_status code, int line, const char *what);
dk_kv *dk_kv_find(dk_cfg *c, const char *key);
gr_status dk_kv_int(dk_cfg *c, const char *key, int def, int lo, int *out);
gr_status dk_kv_float(dk_cfg *c, const char *key, float def, float *out);
gr_status dk_kv_int_fixed(dk_cfg *c, const char *key, int want);
void dk_kv_ignore(dk_cfg *c, const char *const *keys);
gr_status dk_check_unused(dk_cfg *c);

#endif
