/* lr_range.c — the learning-rate range test's arithmetic (the loop that
 * runs it is lr_range_test in fit.c): the smoothed loss curve and the pick. */
#include <math.h>
#include "train/train.h"

void gr_lr_range_smooth(const double *loss, int n, double *out) {
    /* an exponential moving average started at 0 and divided by (1 - 0.9^k)
     * (Adam's bias correction): the first value is the first loss itself,
     * a constant curve stays constant                                     */
    double ema = 0, decay = 1;
    for (int i = 0; i < n; i++) {
        ema = 0.9 * ema + 0.1 * loss[i];
        decay *= 0.9;
        out[i] = ema / (1 - decay);
    }
}

int gr_lr_range_pick(const double *smoothed, int n) {
    if (n < 10) return -1;   /* too few finite points to read a curve */
    int best = 0;
    for (int i = 1; i < n; i++)
        if (smoothed[i] < smoothed[best]) best = i;
    int edge = n / 20 > 3 ? n / 20 : 3;
    /* lowest at the start: the loss only rose; at the end: it was still
     * falling when the sweep stopped (the best rate may lie beyond it)      */
    if (best < edge || best >= n - edge) return -1;
    /* a flat curve: its lowest point is noise, not a rate that learns */
    if (!(smoothed[0] - smoothed[best] >= 0.05 * fabs(smoothed[0]))) return -1;
    return best;
}
