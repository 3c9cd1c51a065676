/* optim.c — SGD (Keras legacy, with momentum / Nesterov / decay) and Adam,
 * as loops over one contiguous range of parameters. */
#include <math.h>
#include <string.h>
#include "train/train.h"

gr_optim gr_sgd(gr_sgd_opts o) {
    gr_optim r;
    memset(&r, 0, sizeof r);
    r.kind = GR_OPTIM_SGD;
    r.lr = o.lr; r.decay = o.decay; r.momentum = o.momentum; r.nesterov = o.nesterov;
    return r;
}

gr_optim gr_adam(float lr) {
    gr_optim r;
    memset(&r, 0, sizeof r);
    r.kind = GR_OPTIM_ADAM;
    r.lr = lr;
    return r;
}

gr_optim gr_adamw(float lr, float weight_decay) {
    gr_optim r = gr_adam(lr);
    r.kind = GR_OPTIM_ADAMW;
    r.weight_decay = weight_decay;
    return r;
}

static const char *const optim_names[] = {"sgd", "adam", "adamw"};
const char *gr_optim_kind_name(gr_optim_kind k) { return (unsigned)k < 3 ? optim_names[k] : "?"; }
int gr_optim_kind_parse(const char *s, gr_optim_kind *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, optim_names[i])) { *out = (gr_optim_kind)i; return 0; }
    return -1;
}

static const char *const schedule_names[] = {"constant", "inverse-time", "step", "cosine"};
const char *gr_schedule_name(gr_schedule s) { return (unsigned)s < 4 ? schedule_names[s] : "?"; }
int gr_schedule_parse(const char *s, gr_schedule *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, schedule_names[i])) { *out = (gr_schedule)i; return 0; }
    return -1;
}

float gr_optim_lr(const gr_optim *o, int64_t it) {
    double lr = o->lr;
    switch (o->schedule) {
    case GR_SCHEDULE_STEP: {
        int64_t per = o->epoch_iters > 0 ? o->epoch_iters : 1;
        int step = o->step_epochs > 0 ? o->step_epochs : 10;
        lr *= pow(o->gamma > 0 ? o->gamma : 0.1, (double)(it / per / step));
        break;
    }
    case GR_SCHEDULE_COSINE:
        if (o->total_iters > 0) {
            double t = (double)(it < o->total_iters ? it : o->total_iters) / (double)o->total_iters;
            lr *= 0.5 * (1.0 + cos(3.141592653589793 * t));
        }
        break;
    default:   /* constant, or Keras' inverse-time decay */
        if (o->decay > 0) lr /= 1.0 + (double)o->decay * (double)it;
        break;
    }
    if (o->warmup_iters > 0 && it < o->warmup_iters) lr *= (double)(it + 1) / (double)o->warmup_iters;
    return (float)lr;
}

/* w, g, s1, s2: n floats.  it = iterations done before this step; lr_mult
 * scales the rate (discriminative rates for base layers). */
void gr_optim_update(const gr_optim *o, int64_t it, float lr_mult, float *w, const float *g,
                     float *s1, float *s2, size_t n) {
    float lr = gr_optim_lr(o, it) * lr_mult, wd = o->weight_decay;
    /* elementwise, so splitting the range over threads changes no result */
    if (o->kind == GR_OPTIM_SGD) {
        float mu = o->momentum;
        /* one branch-free loop per form, so that each vectorizes */
        if (mu == 0) {
#pragma omp parallel for simd schedule(static) if (parallel: n > 65536)
            for (size_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        } else if (o->nesterov) {
#pragma omp parallel for simd schedule(static) if (parallel: n > 65536)
            for (size_t i = 0; i < n; i++) {
                float gi = g[i] + wd * w[i];
                float v = mu * s1[i] - lr * gi;
                s1[i] = v;
                w[i] += mu * v - lr * gi;
            }
        } else {
#pragma omp parallel for simd schedule(static) if (parallel: n > 65536)
            for (size_t i = 0; i < n; i++) {
                float v = mu * s1[i] - lr * (g[i] + wd * w[i]);
                s1[i] = v;
                w[i] += v;
            }
        }
        return;
    }
    /* Adam (Keras): lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), t = it + 1;
     * AdamW first decays the weights by lr * wd (decoupled).                */
    double b1 = o->beta1 > 0 ? o->beta1 : 0.9, b2 = o->beta2 > 0 ? o->beta2 : 0.999;
    double eps = o->epsilon > 0 ? o->epsilon : 1e-7;
    double t = (double)(it + 1);
    float lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
    bool decoupled = o->kind == GR_OPTIM_ADAMW;
#pragma omp parallel for simd schedule(static) if (parallel: n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = decoupled ? g[i] : g[i] + wd * w[i];
        if (decoupled) w[i] -= lr * wd * w[i];
        s1[i] = fb1 * s1[i] + (1 - fb1) * gi;
        s2[i] = fb2 * s2[i] + (1 - fb2) * gi * gi;
        w[i] -= lr_t * s1[i] / (sqrtf(s2[i]) + feps);
    }
}
