/* head.c — the --head spec: comma-separated layers appended after the cut.
 *   flatten | gap | dropout:P | dense:UNITS[:ACTIVATION] | batchnorm | layernorm
 * UNITS may be N (the number of classes).  Default activation: linear.     */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int cli_append_head(gr_model *m, const char *spec, int n_classes, gr_error *err) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf) {
        gr_error_set(err, GR_ERR_ARG, "--head: spec too long");
        return -1;
    }
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), count++) {
        char *f[4] = {tok, NULL, NULL, NULL};
        int nf = 1;
        for (char *c = tok; *c && nf < 4; c++)
            if (*c == ':') { *c = 0; f[nf++] = c + 1; }
        gr_layer_spec s;
        if (!strcmp(f[0], "flatten") && nf == 1) s = gr_flatten();
        else if ((!strcmp(f[0], "gap") || !strcmp(f[0], "global_average_pooling")) && nf == 1) s = gr_global_avgpool();
        else if (!strcmp(f[0], "batchnorm") && nf == 1) s = gr_batchnorm(1e-3f);
        else if (!strcmp(f[0], "layernorm") && nf == 1) s = gr_layernorm(0);
        else if (!strcmp(f[0], "dropout") && nf == 2) {
            float r;
            if (cli_parse_float(f[1], &r) || !(r >= 0 && r < 1)) {
                gr_error_set(err, GR_ERR_ARG, "--head: dropout rate '%s' must be a number in [0, 1)", f[1]);
                return -1;
            }
            s = gr_dropout(r);
        } else if (!strcmp(f[0], "dense") && (nf == 2 || nf == 3)) {
            int units;
            if (!strcmp(f[1], "N") || !strcmp(f[1], "n")) units = n_classes;
            else if (cli_parse_int(f[1], &units) || units <= 0) {
                gr_error_set(err, GR_ERR_ARG, "--head: dense units '%s' must be a positive integer (or N)", f[1]);
                return -1;
            }
            gr_act a = GR_ACT_LINEAR;
            if (nf == 3 && gr_act_parse(f[2], &a) != 0) {
                gr_error_set(err, GR_ERR_ARG, "--head: unknown activation '%s' (relu, leaky, relu6, sigmoid, tanh, softmax, "
                                            "swish, hardswish, hardsigmoid, gelu, linear)", f[2]);
                return -1;
            }
            s = gr_dense(units, a);
        } else {
            gr_error_set(err, GR_ERR_ARG,
                         "--head: cannot read layer %d '%s' (use flatten, gap, dropout:P, dense:UNITS[:ACT], batchnorm, layernorm)",
                         count + 1, f[0]);
            return -1;
        }
        if (gr_model_append(m, s, err) < 0) {
            gr_error_prefix(err, "--head");
            return -1;
        }
    }
    if (count == 0) {
        gr_error_set(err, GR_ERR_ARG, "--head: empty spec");
        return -1;
    }
    return 0;
}
