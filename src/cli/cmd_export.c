/* cmd_export.c — `graft export MODEL.gft --out MODEL.onnx`: a trained model
 * as one ONNX file (gr_model_export_onnx) for ONNX Runtime, OpenCV, OpenVINO. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

typedef struct {
    const char *model, *out;
    int opset, batch, quiet;
} export_args;

static int set_model(void *obj, const char *arg) {
    export_args *a = obj;
    if (a->model) return cli_usage("export: one MODEL, please (got '%s' and '%s')", a->model, arg);
    a->model = arg;
    return 0;
}

static int set_batch(void *obj, const char *v) {
    export_args *a = obj;
    if (!strcmp(v, "dynamic")) { a->batch = 0; return 0; }
    return cli_parse_int(v, &a->batch) || a->batch < 1 ? -1 : 0;
}

#define T export_args
static const cli_opt export_opts[] = {
    OPT_STR("--model", model, "MODEL", NULL, "the graft model (.gft; or give it as the operand)"),
    OPT_STR("--out", out, "FILE.onnx", NULL, "the ONNX file written (required)"),
    OPT_INT("--opset", opset, 1, "13", "the ONNX opset, 11..18"),
    OPT_FUNC("--batch", set_batch, "N|dynamic", "a positive integer or 'dynamic'", "dynamic",
             "the input's batch dimension: fixed, or symbolic (\"N\")"),
    {.kind = CLI_FLAG, .name = "--quiet", .alias = "-q", .off = offsetof(T, quiet), .val = 1,
     .help = "print nothing on success"},
    OPT_END};
#undef T

static const cli_cmd export_cmd = {
    .name = "export",
    .intro = "usage: graft export MODEL.gft --out MODEL.onnx [--opset N] [--batch N|dynamic]\n"
             "\n"
             "Writes a trained model (base + head) as one ONNX file that ONNX Runtime, OpenCV's\n"
             "dnn module and OpenVINO run.  Input \"input\": the PREPROCESSED image, float32\n"
             "NCHW [N, C, H, W] (as torchvision exports); output \"output\": what graft predict\n"
             "computes (probabilities when the model ends in a softmax).  The preprocessing\n"
             "(resize, channel order, pixel scale, mean, std), the class names and graft's\n"
             "version are in the file's metadata_props (README \"Export to ONNX\").\n"
             "\n",
    .opts = export_opts,
    .outro = "A layer with no ONNX form is an error naming it, and no file is written;\n"
             "the file is written atomically (temp file, fsync, rename).  Exit status 1: a\n"
             "missing or bad model, an unwritable --out; 2: a usage error.\n",
    .operand = set_model};

int cmd_export(int argc, char **argv) {
    export_args a = {.opset = GR_ONNX_EXPORT_OPSET};
    int rc = cli_parse(&export_cmd, argc, argv, &a);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!a.model) return cli_usage("export: which model? (graft export MODEL.gft --out MODEL.onnx)");
    if (!a.out) return cli_usage("export: --out FILE.onnx is required");
    if (a.opset < 11 || a.opset > 18) return cli_usage("--opset %d: graft exports opsets 11..18", a.opset);
    cli_outputs outs = {0};
    cli_outputs_add(&outs, "--out", a.out, NULL);
    cli_input ins[1] = {{"MODEL", a.model}};
    if ((rc = cli_outputs_claim(&outs, ins, 1))) return rc;
    gr_error err = {0};
    gr_model *m = gr_model_load(a.model, &err);
    gr_onnx_export_opts o = {.opset = a.opset, .batch = a.batch};
    if (!m || gr_model_export_onnx(m, a.out, &o, &err) != GR_OK) rc = cli_fail(&err);
    else if (!a.quiet) {
        int h, w, c, oh, ow, oc;
        gr_model_layer_shape(m, -1, &h, &w, &c);
        gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &oh, &ow, &oc);
        char batch[16], shape[64];
        if (a.batch) snprintf(batch, sizeof batch, "%d", a.batch);
        else snprintf(batch, sizeof batch, "N");
        if (oh == 1 && ow == 1) snprintf(shape, sizeof shape, "%d", oc);
        else snprintf(shape, sizeof shape, "%d, %d, %d", oc, oh, ow);
        gr_recipe r = gr_model_recipe(m);
        printf("exported %s: opset %d, input \"input\" float32 [%s, %d, %d, %d] (NCHW, preprocessed: %s), "
               "output \"output\" [%s, %s]\n", a.out, a.opset, batch, c, h, w, gr_preprocess_name(gr_norm_preset_of(&r.norm)), batch, shape);
    }
    gr_model_free(m);
    cli_outputs_release(&outs);
    return rc;
}
