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

float gr_optim_lr(const gr_optim *o, int64_t it) {
    return o->decay > 0 ? (float)(o->lr / (1.0 + (double)o->decay * (double)it)) : o->lr;
}

/* w, g, s1, s2: n floats.  it = iterations done before this step. */
void gr_optim_update(const gr_optim *o, int64_t it, float *w, const float *g, float *s1,
                     float *s2, size_t n) {
    float lr = gr_optim_lr(o, it);
    if (o->kind == GR_OPTIM_SGD) {
        float mu = o->momentum;
        if (mu == 0) {
            for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
            return;
        }
        for (size_t i = 0; i < n; i++) {
            float v = mu * s1[i] - lr * g[i];
            s1[i] = v;
            w[i] += o->nesterov ? mu * v - lr * g[i] : v;
        }
        return;
    }
    /* Adam (Keras): lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), t = it + 1 */
    double b1 = o->beta1 > 0 ? o->beta1 : 0.9, b2 = o->beta2 > 0 ? o->beta2 : 0.999;
    double eps = o->epsilon > 0 ? o->epsilon : 1e-7;
    double t = (double)(it + 1);
    float lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
    for (size_t i = 0; i < n; i++) {
        s1[i] = fb1 * s1[i] + (1 - fb1) * g[i];
        s2[i] = fb2 * s2[i] + (1 - fb2) * g[i] * g[i];
        w[i] -= lr_t * s1[i] / (sqrtf(s2[i]) + feps);
    }
}
