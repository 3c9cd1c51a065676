/* loss.c — categorical cross-entropy on probabilities, accuracy, top-5. */
#include <math.h>
#include "graft.h"

/* p [B, C] probabilities; labels [B].  y = one-hot smoothed by ls:
 * y_c = (1 - ls) [c == label] + ls / C.  Loss per sample
 * -sum_c y_c log(clip(p_c, 1e-7, 1 - 1e-7)), as Keras computes it.
 * Returns the sum over the batch; counts top-1 / top-5 hits.              */
double gr_cross_entropy(const float *p, const int *labels, int B, int C, float ls,
                        int *correct, int *correct_top5) {
    const double lo = 1e-7, hi = 1.0 - 1e-7;
    double total = 0;
    int c1 = 0, c5 = 0;
    for (int b = 0; b < B; b++) {
        const float *pb = p + (size_t)b * C;
        int y = labels[b];
        double l = 0;
        for (int c = 0; c < C; c++) {
            double yc = (c == y ? 1.0 - ls : 0.0) + (double)ls / C;
            if (yc == 0) continue;
            double q = pb[c] < lo ? lo : (pb[c] > hi ? hi : pb[c]);
            l -= yc * log(q);
        }
        total += l;
        /* rank of the true class: number of classes strictly more probable,
         * ties broken by index (the lower index wins, like argmax). */
        int rank = 0;
        for (int c = 0; c < C; c++)
            if (pb[c] > pb[y] || (pb[c] == pb[y] && c < y)) rank++;
        if (!isfinite(pb[y])) rank = C + 5;   /* a NaN score is never a hit (NaN > x is false) */
        if (rank == 0) c1++;
        if (rank < 5) c5++;
    }
    if (correct) *correct = c1;
    if (correct_top5) *correct_top5 = c5;
    return total;
}
