/* checkpoint.c — gr_fit's checkpoints: the model file (gr_model_save_ex)
 * with the optimizer state as extra tensors and the run's position, rate,
 * RNG and settings as metadata "graft.training"; and resume from one.     */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json.h>
#include "format/safetensors.h"
#include "train/fit.h"

/* Checkpoint: the model + optimizer state + iteration + RNG + epoch, and
 * the run's settings (checked on resume).                                  */
gr_status gr_checkpoint_save(gr_model *m, gr_trainer *t, const char *path, int epoch, int step,
                             const gr_run_state *rs, const char *config, const float *ema, gr_error *err) {
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(t, &s1, &s2, &np, &it, &rng);
    int64_t shape[1] = {(int64_t)np};
    gr_st_entry e[3] = {{"__optimizer__/s1", "F32", 1, shape, s1}, {"__optimizer__/s2", "F32", 1, shape, s2},
                        {"__ema__", "F32", 1, shape, ema}};
    int ne = 1;
    if (s2) ne++;
    if (ema) e[ne++] = e[2];
    size_t cap = (config ? strlen(config) : 2) + 512;
    char *json = gr_malloc(cap, err);
    if (!json) return err->code;
    int len = snprintf(json, cap,
             "{\"epoch\": %d, \"step\": %d, \"iterations\": %lld, \"lr\": %.9g, \"epoch_loss_sum\": %.17g, "
             "\"epoch_correct\": %lld, \"epoch_seen\": %d, \"rng\": [\"%016llx\", "
             "\"%016llx\", \"%016llx\", \"%016llx\"], \"config\": %s}",
             epoch, step, (long long)*it, (double)rs->lr, rs->loss_sum, (long long)rs->correct, rs->seen,
             (unsigned long long)rng->s[0], (unsigned long long)rng->s[1],
             (unsigned long long)rng->s[2], (unsigned long long)rng->s[3], config ? config : "{}");
    gr_status st = len < 0 || (size_t)len >= cap
                       ? gr_error_set(err, GR_ERR_ARG, "%s: the run's settings are too long for a checkpoint", path)
                       : gr_model_save_ex(m, path, json, e, ne, err);
    free(json);
    return st;
}

/* A setting's value for a message: numbers with %g (a float stored as
 * 0.0099999997764825821 reads 0.01), strings as they are (no JSON escapes). */
static const char *json_plain(json_object *v, char *buf, size_t cap) {
    if (!v) snprintf(buf, cap, "(none)");
    else if (json_object_is_type(v, json_type_double)) snprintf(buf, cap, "%g", (double)(float)json_object_get_double(v));
    else if (json_object_is_type(v, json_type_string)) snprintf(buf, cap, "%s", json_object_get_string(v));
    else snprintf(buf, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    return buf;
}

/* The settings the checkpoint recorded (cfg) against this run's (config,
 * a JSON object text): any that differs is an error naming it.            */
static gr_status check_config(const char *path, json_object *cfg, const char *config, gr_error *err) {
    json_object *want = json_tokener_parse(config);
    if (!want) return GR_OK;
    gr_status st = GR_OK;
    json_object_object_foreach(want, key, val) {
        json_object *had;
        /* the run may be extended (Keras' initial_epoch) and write
         * elsewhere; settings an older checkpoint did not record
         * are not compared                                          */
        if (!strcmp(key, "epochs") || !strcmp(key, "out") || !strcmp(key, "log") ||
            !strcmp(key, "checkpoint") || !strcmp(key, "no_cache") ||
            !strcmp(key, "budget_start") ||   /* (--budget: a resumed run's clock moves by the pause) */
            !json_object_object_get_ex(cfg, key, &had))
            continue;
        if (!json_object_equal(had, val)) {
            char a[1024], b[1024];
            st = gr_error_set(err, GR_ERR_ARG,
                              "--resume %s: the checkpoint was made with %s = %s, this run has %s", path, key,
                              json_plain(had, a, sizeof a), json_plain(val, b, sizeof b));
            break;
        }
    }
    json_object_put(want);
    return st;
}

/* Restores the trainer's state from a checkpoint; *epoch = epochs done. */
gr_status gr_checkpoint_load(gr_trainer *t, const char *path, const char *config, int *epoch, int *step,
                             gr_run_state *rs, float *ema, gr_error *err) {
    gr_st_file *sf = gr_st_open(path, err);
    if (!sf) return err->code;
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(t, &s1, &s2, &np, &it, &rng);
    gr_status st = GR_OK;
    const char *tr = gr_st_meta(sf, "graft.training");
    json_object *root = tr ? json_tokener_parse(tr) : NULL, *v, *cfg;
    int i1 = gr_st_find(sf, "__optimizer__/s1"), i2 = gr_st_find(sf, "__optimizer__/s2");
    if (!root || !json_object_object_get_ex(root, "epoch", &v) || i1 < 0) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a graft checkpoint (no optimizer state)", path);
        goto out;
    }
    *epoch = json_object_get_int(v);
    *step = json_object_object_get_ex(root, "step", &v) ? json_object_get_int(v) : 0;
    if (*epoch < 0 || *step < 0) {   /* from the file: checked before they index anything */
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: the checkpoint's %s %d is negative", path,
                          *epoch < 0 ? "epoch" : "step", *epoch < 0 ? *epoch : *step);
        goto out;
    }
    if (config && json_object_object_get_ex(root, "config", &cfg) &&
        (st = check_config(path, cfg, config, err)) != GR_OK)
        goto out;
    if (gr_st_count(sf, i1) != (int64_t)np || (s2 && (i2 < 0 || gr_st_count(sf, i2) != (int64_t)np))) {
        st = gr_error_set(err, GR_ERR_SHAPE, "%s: its optimizer state does not fit this model/optimizer", path);
        goto out;
    }
    if ((st = gr_st_read_f32(sf, i1, s1, (int64_t)np, err)) != GR_OK) goto out;
    if (s2 && (st = gr_st_read_f32(sf, i2, s2, (int64_t)np, err)) != GR_OK) goto out;
    if (ema) {   /* --ema: the moving average goes on from where it was */
        int ie = gr_st_find(sf, "__ema__");
        if (ie < 0 || gr_st_count(sf, ie) != (int64_t)np) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: the checkpoint holds no moving average of the weights "
                              "(--ema) for this model", path);
            goto out;
        }
        if ((st = gr_st_read_f32(sf, ie, ema, (int64_t)np, err)) != GR_OK) goto out;
    }
    if (json_object_object_get_ex(root, "iterations", &v)) *it = json_object_get_int64(v);
    /* the base rate in use (--lr auto picks it once, before the first epoch) */
    if (json_object_object_get_ex(root, "lr", &v) && json_object_get_double(v) > 0) {
        rs->lr = (float)json_object_get_double(v);
        gr_trainer_set_lr(t, rs->lr);
    }
    if (json_object_object_get_ex(root, "epoch_loss_sum", &v)) rs->loss_sum = json_object_get_double(v);
    if (json_object_object_get_ex(root, "epoch_correct", &v)) rs->correct = json_object_get_int64(v);
    if (json_object_object_get_ex(root, "epoch_seen", &v)) rs->seen = json_object_get_int(v);
    if (*it < 0 || rs->correct < 0 || rs->seen < 0 || rs->correct > rs->seen) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: the checkpoint's iterations / epoch_correct / epoch_seen "
                          "(%lld / %lld / %d) are not counts", path, (long long)*it, (long long)rs->correct, rs->seen);
        goto out;
    }
    if (json_object_object_get_ex(root, "rng", &v) && json_object_array_length(v) == 4)
        for (int k = 0; k < 4; k++)
            rng->s[k] = strtoull(json_object_get_string(json_object_array_get_idx(v, (size_t)k)), NULL, 16);
out:
    if (root) json_object_put(root);
    gr_st_close(sf);
    return st;
}
