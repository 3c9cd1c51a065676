/* record.c — the run record (DIR/run.json): what a train or eval run did,
 * gathered as JSON for the report (see report.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "graph/model.h"
#include "report/report.h"

#define N_PAIRS 6      /* most confused pairs shown */
#define N_EXAMPLES 8   /* thumbnails per pair */
#define THUMB_MAX 96   /* a thumbnail's longest side, pixels */

static gr_status nomem(gr_error *err) { return gr_error_set(err, GR_ERR_NOMEM, "out of memory (run record)"); }

gr_status gr_report_set(json_object *run, const char *key, json_object *val, gr_error *err) {
    if (!val || json_object_object_add(run, key, val) != 0) {
        json_object_put(val);
        return nomem(err);
    }
    return GR_OK;
}

/* Appends s to buf (cap bytes) quoted for a POSIX shell when it needs it. */
static void append_arg(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    bool plain = *s != 0;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%", *p)) plain = false;
    if (len && len + 1 < cap) buf[len++] = ' ';
    if (!plain && len + 1 < cap) buf[len++] = '\'';
    for (const char *p = s; *p && len + 5 < cap; p++) {
        if (*p == '\'') { memcpy(buf + len, "'\\''", 4); len += 4; }
        else buf[len++] = *p;
    }
    if (!plain && len + 1 < cap) buf[len++] = '\'';
    buf[len < cap ? len : cap - 1] = 0;
}

json_object *gr_report_run_new(int argc, char **argv, gr_error *err) {
    json_object *run = json_object_new_object();
    char *cmd = calloc(16384, 1);
    if (!run || !cmd) { json_object_put(run); free(cmd); nomem(err); return NULL; }
    append_arg(cmd, 16384, "graft");
    for (int i = 0; i < argc; i++) append_arg(cmd, 16384, argv[i]);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    gr_status st = gr_report_set(run, "command", json_object_new_string(cmd), err);
    if (st == GR_OK) st = gr_report_set(run, "subcommand", json_object_new_string(argc ? argv[0] : ""), err);
    if (st == GR_OK) st = gr_report_set(run, "version", json_object_new_string(GRAFT_VERSION), err);
    if (st == GR_OK) st = gr_report_set(run, "started", json_object_new_string(when), err);
    free(cmd);
    if (st != GR_OK) { json_object_put(run); return NULL; }
    return run;
}

static json_object *int_array(const int64_t *v, int n) {
    json_object *a = json_object_new_array_ext(n);
    for (int i = 0; a && i < n; i++)
        if (json_object_array_add(a, json_object_new_int64(v[i])) != 0) { json_object_put(a); return NULL; }
    return a;
}

gr_status gr_report_add_model(json_object *run, const gr_model *m, int head_first, float base_lr_mult,
                              gr_error *err) {
    json_object *mo = json_object_new_object(), *layers = json_object_new_array();
    if (!mo || !layers) { json_object_put(mo); json_object_put(layers); return nomem(err); }
    json_object_object_add(mo, "layers", layers);
    int h, w, c;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    json_object *in = json_object_new_array();
    json_object_array_add(in, json_object_new_int(h));
    json_object_array_add(in, json_object_new_int(w));
    json_object_array_add(in, json_object_new_int(c));
    json_object_object_add(mo, "input", in);
    json_object_object_add(mo, "preprocess", json_object_new_string(gr_preprocess_name(gr_model_preprocess(m))));
    gr_norm nrm = gr_model_norm(m);
    json_object *no = json_object_new_object(), *nmean = json_object_new_array(), *nstd = json_object_new_array();
    json_object_object_add(no, "pixel_scale", json_object_new_double(nrm.scale));
    for (int k = 0; k < 3; k++) {
        json_object_array_add(nmean, json_object_new_double(nrm.mean[k]));
        json_object_array_add(nstd, json_object_new_double(nrm.std[k]));
    }
    json_object_object_add(no, "mean", nmean);
    json_object_object_add(no, "std", nstd);
    json_object_object_add(no, "channel_order", json_object_new_string(nrm.bgr ? "BGR" : "RGB"));
    json_object_object_add(mo, "normalization", no);
    json_object_object_add(mo, "params", json_object_new_int64(gr_model_param_count(m, false)));
    json_object_object_add(mo, "trainable_params", json_object_new_int64(gr_model_param_count(m, true)));
    int last_frozen = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const gr_node *nd = &m->nodes[i];
        if (nd->frozen) last_frozen = i;
        int64_t np = 0, ntr = 0;
        for (int p = nd->p0; p < nd->p0 + nd->np; p++) {
            np += (int64_t)m->params[p].count;
            if (!gr_param_is_statistic(m->params[p].kind)) ntr += (int64_t)m->params[p].count;
        }
        json_object *l = json_object_new_object();
        if (!l || json_object_array_add(layers, l) != 0) { json_object_put(l); json_object_put(mo); return nomem(err); }
        json_object_object_add(l, "name", json_object_new_string(gr_model_layer_name(m, i)));
        json_object_object_add(l, "op", json_object_new_string(gr_op_name(nd->s.op)));
        char shape[64];
        if (nd->oh == 1 && nd->ow == 1 && (nd->s.op == GR_OP_DENSE || nd->s.op == GR_OP_FLATTEN ||
                                           nd->s.op == GR_OP_GLOBAL_AVGPOOL || nd->ih == 1))
            snprintf(shape, sizeof shape, "%d", nd->oc);
        else
            snprintf(shape, sizeof shape, "%dx%dx%d", nd->oh, nd->ow, nd->oc);
        json_object_object_add(l, "shape", json_object_new_string(shape));
        json_object_object_add(l, "params", json_object_new_int64(np));
        json_object_object_add(l, "frozen", json_object_new_boolean(nd->frozen));
        double mult = !nd->frozen && head_first > 0 && i < head_first && base_lr_mult > 0 ? base_lr_mult : 1.0;
        if (!nd->frozen && ntr > 0) json_object_object_add(l, "lr_mult", json_object_new_double(mult));
    }
    /* the cut: the last layer of the base (before the head, which starts at
     * head_first when fine-tuning), else the end of the frozen prefix      */
    int cut = head_first > 0 ? head_first - 1 : last_frozen;
    json_object_object_add(mo, "cut", cut >= 0 ? json_object_new_string(gr_model_layer_name(m, cut)) : NULL);
    json_object *cls = json_object_new_array();
    for (int k = 0; cls && k < gr_model_num_classes(m); k++) {
        const char *nm = gr_model_class_name(m, k);
        json_object_array_add(cls, json_object_new_string(nm ? nm : ""));
    }
    json_object_object_add(mo, "classes", cls);
    return gr_report_set(run, "model", mo, err);
}

gr_status gr_report_add_data(json_object *run, const char *split, const char *source, const gr_dataset *ds,
                             const int *idx, int n, gr_error *err) {
    json_object *data;
    if (!json_object_object_get_ex(run, "data", &data)) {
        data = json_object_new_object();
        if (gr_report_set(run, "data", data, err) != GR_OK) return GR_ERR_NOMEM;
    }
    if (!idx) n = gr_dataset_count(ds);
    int C = gr_dataset_num_classes(ds);
    int64_t *counts = gr_calloc((size_t)(C > 0 ? C : 1), sizeof *counts, err);
    if (!counts) return GR_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        int y = gr_dataset_label(ds, idx ? idx[i] : i);
        if (y >= 0 && y < C) counts[y]++;
    }
    json_object *d = json_object_new_object();
    if (d) {
        int h, w;
        gr_dataset_size(ds, &h, &w);
        json_object_object_add(d, "source", json_object_new_string(source ? source : ""));
        json_object_object_add(d, "images", json_object_new_int(n));
        json_object_object_add(d, "classes", json_object_new_int(C));
        json_object_object_add(d, "counts", int_array(counts, C));
        json_object *names = json_object_new_array();
        for (int k = 0; names && k < C; k++) {
            const char *nm = gr_dataset_class_name(ds, k);
            json_object_array_add(names, json_object_new_string(nm ? nm : ""));
        }
        json_object_object_add(d, "class_names", names);
        json_object_object_add(d, "skipped", json_object_new_int(gr_dataset_skipped(ds)));
    }
    free(counts);
    return gr_report_set(data, split, d, err);
}

gr_status gr_report_add_probe(json_object *run, const gr_probe_row *rows, int n, int chosen, gr_error *err) {
    json_object *a = json_object_new_array();
    if (!a) return nomem(err);
    for (int k = 0; k < n; k++) {
        if (!rows[k].name[0]) continue;
        const gr_probe_score *sc = rows[k].use_flat ? &rows[k].flat : &rows[k].pooled;
        json_object *r = json_object_new_object();
        if (!r || json_object_array_add(a, r) != 0) { json_object_put(r); json_object_put(a); return nomem(err); }
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", rows[k].h, rows[k].w, rows[k].c);
        json_object_object_add(r, "cut", json_object_new_string(rows[k].name));
        json_object_object_add(r, "shape", json_object_new_string(shape));
        json_object_object_add(r, "form", json_object_new_string(gr_probe_form_name(sc->form)));
        json_object_object_add(r, "features", json_object_new_int(sc->features));
        json_object_object_add(r, "ridge_accuracy", json_object_new_double(sc->ridge_acc));
        json_object_object_add(r, "logme", json_object_new_double(sc->logme));
        json_object_object_add(r, "chosen", json_object_new_boolean(rows[k].node == chosen));
    }
    return gr_report_set(run, "probe", a, err);
}

/* Undoes gr_norm_apply on one pixel: x (3 floats, normalized) -> RGB8. */
static void unnormalize(const gr_norm *nm, const float *x, uint8_t *rgb) {
    gr_norm n = gr_norm_resolved(nm);
    for (int c = 0; c < 3; c++) {
        int k = n.bgr ? 2 - c : c;   /* the network channel holding R, G, B */
        float v = (x[k] * n.std[k] + n.mean[k]) * n.scale;
        rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
    }
}

/* dir/thumbs/<i>.png: sample i of ds as the model saw it (resized, not
 * preprocessed), box-averaged down to at most THUMB_MAX pixels a side.     */
static gr_status write_thumb(const char *dir, const gr_dataset *ds, const gr_norm *norm, int i, gr_error *err) {
    int h, w;
    gr_dataset_size(ds, &h, &w);
    int f = ((h > w ? h : w) + THUMB_MAX - 1) / THUMB_MAX;
    if (f < 1) f = 1;
    int th = h / f, tw = w / f;
    float *x = gr_malloc((size_t)h * w * 3 * sizeof(float), err);
    uint8_t *rgb = gr_malloc((size_t)h * w * 3, err), *t = gr_malloc((size_t)th * tw * 3 + 1, err);
    gr_status st = x && rgb && t ? gr_dataset_get(ds, i, x, err) : GR_ERR_NOMEM;
    if (st == GR_OK) {
        for (size_t p = 0; p < (size_t)h * w; p++) unnormalize(norm, x + 3 * p, rgb + 3 * p);
        for (int y = 0; y < th; y++)
            for (int xx = 0; xx < tw; xx++)
                for (int c = 0; c < 3; c++) {
                    unsigned s = 0;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++) s += rgb[((size_t)(y * f + dy) * w + xx * f + dx) * 3 + c];
                    t[((size_t)y * tw + xx) * 3 + c] = (uint8_t)((s + f * f / 2) / (f * f));
                }
        char path[4400];
        snprintf(path, sizeof path, "%s/thumbs/%d.png", dir, i);
        st = gr_png_write_rgb(path, t, th, tw, err);
    }
    free(x); free(rgb); free(t);
    return st;
}

gr_status gr_report_add_eval(json_object *run, const char *dir, const gr_model *m, const gr_dataset *ds,
                             const char *source, const gr_eval_result *r, gr_error *err) {
    int C = r->n_classes;
    const gr_norm nrm = gr_model_norm(m);
    json_object *e = json_object_new_object();
    if (!e) return nomem(err);
    json_object_object_add(e, "source", json_object_new_string(source ? source : ""));
    json_object_object_add(e, "images", json_object_new_int(r->n));
    json_object_object_add(e, "loss", json_object_new_double(r->loss));
    json_object_object_add(e, "accuracy", json_object_new_double(r->accuracy));
    json_object_object_add(e, "top5", json_object_new_double(r->top5));
    json_object *names = json_object_new_array(), *conf = json_object_new_array(), *pc = json_object_new_array();
    json_object_object_add(e, "classes", names);
    json_object_object_add(e, "confusion", conf);
    json_object_object_add(e, "per_class", pc);
    if (!names || !conf || !pc) { json_object_put(e); return nomem(err); }
    for (int k = 0; k < C; k++) {
        const char *nm = gr_model_class_name(m, k);
        if (!nm) nm = gr_dataset_class_name(ds, k);
        char def[24];
        snprintf(def, sizeof def, "%d", k);
        json_object_array_add(names, json_object_new_string(nm ? nm : def));
        json_object_array_add(conf, int_array(r->confusion + (size_t)k * C, C));
        int64_t tp = r->confusion[(size_t)k * C + k], row = 0, col = 0;
        for (int j = 0; j < C; j++) {
            row += r->confusion[(size_t)k * C + j];
            col += r->confusion[(size_t)j * C + k];
        }
        double prec = col ? (double)tp / col : 0, rec = row ? (double)tp / row : 0;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "support", json_object_new_int64(row));
        json_object_object_add(o, "precision", json_object_new_double(prec));
        json_object_object_add(o, "recall", json_object_new_double(rec));
        json_object_object_add(o, "f1", json_object_new_double(prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0));
        json_object_array_add(pc, o);
    }
    /* the most confused pairs: the largest off-diagonal cells */
    json_object *pairs = json_object_new_array();
    json_object_object_add(e, "confused", pairs);
    char tdir[4200];
    snprintf(tdir, sizeof tdir, "%s/thumbs", dir);
    gr_status st = pairs ? gr_report_mkdir(tdir, err) : nomem(err);
    int64_t *taken = st == GR_OK ? gr_calloc((size_t)C * C, sizeof *taken, err) : NULL;
    if (st == GR_OK && !taken) st = GR_ERR_NOMEM;
    for (int np = 0; st == GR_OK && np < N_PAIRS; np++) {
        int bt = -1, bp = -1;
        int64_t best = 0;
        for (int a = 0; a < C; a++)
            for (int b = 0; b < C; b++)
                if (a != b && !taken[(size_t)a * C + b] && r->confusion[(size_t)a * C + b] > best) {
                    best = r->confusion[(size_t)a * C + b];
                    bt = a;
                    bp = b;
                }
        if (bt < 0) break;
        taken[(size_t)bt * C + bp] = 1;
        /* its examples: the N_EXAMPLES most confident (highest probability) */
        int ex[N_EXAMPLES], nex = 0;
        for (int i = 0; i < r->n; i++) {
            if (r->label[i] != bt || r->pred[i] != bp) continue;
            int at;
            if (nex < N_EXAMPLES) at = nex++;
            else if (r->prob[i] > r->prob[ex[N_EXAMPLES - 1]]) at = N_EXAMPLES - 1;
            else continue;
            ex[at] = i;
            for (int q = at; q > 0 && r->prob[ex[q]] > r->prob[ex[q - 1]]; q--) {
                int tmp = ex[q]; ex[q] = ex[q - 1]; ex[q - 1] = tmp;
            }
        }
        json_object *p = json_object_new_object(), *exa = json_object_new_array();
        if (!p || !exa || json_object_array_add(pairs, p) != 0) { json_object_put(p); json_object_put(exa); st = nomem(err); break; }
        json_object_object_add(p, "true", json_object_new_int(bt));
        json_object_object_add(p, "pred", json_object_new_int(bp));
        json_object_object_add(p, "count", json_object_new_int64(best));
        json_object_object_add(p, "examples", exa);
        for (int q = 0; q < nex && st == GR_OK; q++) {
            json_object *x = json_object_new_object();
            json_object_array_add(exa, x);
            json_object_object_add(x, "index", json_object_new_int(ex[q]));
            json_object_object_add(x, "prob", json_object_new_double(r->prob[ex[q]]));
            const char *path = gr_dataset_path(ds, ex[q]);
            if (path) json_object_object_add(x, "path", json_object_new_string(path));
            char th[64];
            snprintf(th, sizeof th, "thumbs/%d.png", ex[q]);
            json_object_object_add(x, "thumb", json_object_new_string(th));
            st = write_thumb(dir, ds, &nrm, ex[q], err);
        }
    }
    free(taken);
    if (st != GR_OK) { json_object_put(e); return st; }
    return gr_report_set(run, "eval", e, err);
}
