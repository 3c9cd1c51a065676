/* make_seeds.c — writes the seed inputs that only graft itself can make
 * (fuzz/make_seeds.sh runs it): model files, checkpoints (SGD and Adam,
 * after an epoch and mid-run), safetensors files with every dtype, graft
 * and torchvision names.  Usage: make_seeds OUTDIR (writes
 * OUTDIR/{model_file,checkpoint,safetensors}/...).                         */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "graft.h"
#include "format/safetensors.h"

static const char *out;

static void die(const char *what, const gr_error *err) {
    fprintf(stderr, "make_seeds: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void path(char *buf, size_t cap, const char *sub, const char *name) {
    snprintf(buf, cap, "%s/%s", out, sub);
    mkdir(buf, 0755);
    snprintf(buf, cap, "%s/%s/%s", out, sub, name);
}

/* 8x8x3 -> conv 3x3 4 relu -> bn -> maxpool 2 -> flatten -> dense 5 softmax, classes a..e */
static gr_model *small_cnn(int h, int w, gr_error *err) {
    gr_model *m = gr_model_new(h, w, 3, err);
    if (!m || gr_stack(m, err, gr_conv2d(4, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_batchnorm(0),
                       gr_maxpool(2, 2), gr_dropout(0.25f), gr_flatten(), gr_dense(5, GR_ACT_SOFTMAX)) != GR_OK)
        die("small_cnn", err);
    gr_model_init_params(m, 0, 7);
    const char *names[] = {"a", "b", "c", "d", "e"};
    if (gr_model_set_classes(m, 5, names, err) != GR_OK) die("classes", err);
    gr_model_set_preprocess(m, GR_PREP_CAFFE);
    return m;
}

static void model_files(const char *srcdir) {
    gr_error err = {0};
    char p[512], cfg[512];
    gr_model *m = small_cnn(8, 8, &err);
    path(p, sizeof p, "model_file", "small_cnn.gft");
    if (gr_model_save(m, p, "{\"epochs\": 3}", &err) != GR_OK) die(p, &err);
    gr_model_free(m);
    m = gr_model_new(6, 5, 3, &err);
    if (!m || gr_stack(m, &err, gr_avgpool(2, 1), gr_global_avgpool(), gr_dense(3, GR_ACT_LINEAR), gr_softmax()) != GR_OK)
        die("pool model", &err);
    /* free normalization values (custom: a "normalization" object beside "preprocess") */
    if (gr_model_set_norm(m, &(gr_norm){127.5f, {0.5f, 0.25f, 0.125f}, {0.5f, 0.25f, 2}, true}, &err) != GR_OK)
        die("norm", &err);
    path(p, sizeof p, "model_file", "pools.gft");
    if (gr_model_save(m, p, NULL, &err) != GR_OK) die(p, &err);
    gr_model_free(m);
    /* a darknet network: add, concat, explicit padding, forced pool sizes */
    snprintf(cfg, sizeof cfg, "%s/tests/fixtures/darknet/synth.cfg", srcdir);
    if (!(m = gr_darknet_load_cfg(cfg, 0, 0, &err))) die(cfg, &err);
    gr_model_init_params(m, 0, 3);
    path(p, sizeof p, "model_file", "darknet_synth.gft");
    if (gr_model_save(m, p, NULL, &err) != GR_OK) die(p, &err);
    gr_model_free(m);
}

static void checkpoints(void) {
    gr_error err = {0};
    char bin[512], p[512];
    static unsigned char rec[4 * 3073];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (unsigned char)(i * 37u);
    for (int r = 0; r < 4; r++) rec[r * 3073] = (unsigned char)r;
    path(bin, sizeof bin, "tmp", "tiny_batch.bin");
    FILE *f = fopen(bin, "wb");
    if (!f || fwrite(rec, 1, sizeof rec, f) != sizeof rec || fclose(f)) die(bin, NULL);
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.format = GR_DATA_CIFAR10}, &err);
    if (!ds) die(bin, &err);
    for (int k = 0; k < 2; k++) {
        gr_model *m = gr_model_new(32, 32, 3, &err);
        if (!m || gr_stack(m, &err, gr_maxpool(4, 4), gr_conv2d(2, 1, 1, 1, GR_PAD_VALID, GR_ACT_RELU),
                           gr_global_avgpool(), gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK)
            die("checkpoint model", &err);
        gr_model_init_params(m, 0, 5);
        gr_model_freeze_upto(m, 1);
        path(p, sizeof p, "checkpoint", k ? "adam.ckpt" : "sgd.ckpt");
        gr_fit_opts o = {.epochs = 1, .batch = 2, .seed = 1, .threads = 1, .no_cache = true, .checkpoint = p,
                         .config_json = "{\"lr\": 0.01}"};
        if (k) o.optim = gr_adam(0.001f);
        if (gr_fit(m, ds, NULL, 0, &o, &err) != GR_OK) die("gr_fit", &err);
        gr_model_free(m);
    }
    gr_dataset_free(ds);
    remove(bin);
}

static void safetensors(void) {
    gr_error err = {0};
    char p[512];
    float f32[24];
    for (int i = 0; i < 24; i++) f32[i] = (float)i * 0.5f - 3;
    uint16_t f16[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000};
    uint16_t bf16[6] = {0x3f80, 0xc000, 0x7f7f, 0x0001, 0x7f80, 0x8000};
    double f64[4] = {1.5, -2.25, 1e300, 0};
    int64_t i64[2] = {-1, 7};
    int64_t s4[4] = {2, 3, 2, 2}, s2a[2] = {2, 3}, s1[1] = {4}, s1b[1] = {2}, s0[1] = {0};
    gr_st_entry e[] = {{"block1_conv1/kernel", "F32", 4, s4, f32}, {"block1_conv1/bias", "F16", 2, s2a, f16},
                       {"bn/gamma", "BF16", 2, s2a, bf16}, {"dense/kernel", "F64", 1, s1, f64},
                       {"counts", "I64", 1, s1b, i64}, {"empty", "F32", 1, s0, f32}};
    const char *meta[] = {"format", "pt", "graft.architecture", "{\"layers\": []}"};
    path(p, sizeof p, "safetensors", "dtypes.safetensors");
    if (gr_st_write(p, e, 6, meta, 2, &err) != GR_OK) die(p, &err);
    /* torchvision names: OIHW conv kernels, [out][in] linear weights, BN buffers */
    int64_t oihw[4] = {2, 3, 2, 2}, lin[2] = {3, 8}, v2[1] = {2}, v3[1] = {3}, sc[1] = {1};
    gr_st_entry t[] = {{"features.0.weight", "F32", 4, oihw, f32}, {"features.0.bias", "F32", 1, v2, f32},
                       {"features.1.weight", "F32", 1, v2, f32}, {"features.1.bias", "F32", 1, v2, f32},
                       {"features.1.running_mean", "F32", 1, v2, f32}, {"features.1.running_var", "F32", 1, v2, f32},
                       {"features.1.num_batches_tracked", "I64", 1, sc, i64},
                       {"classifier.0.weight", "F32", 2, lin, f32}, {"classifier.0.bias", "F32", 1, v3, f32}};
    path(p, sizeof p, "safetensors", "torchvision.safetensors");
    if (gr_st_write(p, t, 9, NULL, 0, &err) != GR_OK) die(p, &err);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds OUTDIR SRCDIR\n");
        return 2;
    }
    out = argv[1];
    mkdir(out, 0755);
    gr_set_threads(1);
    model_files(argv[2]);
    checkpoints();
    safetensors();
    return 0;
}
