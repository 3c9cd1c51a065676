/* seed_cifar10.c — the classic Keras transfer-learning recipe, line for line,
 * against graft's C API.  The Keras original is quoted beside each step.
 *
 *   build/examples/seed_cifar10 [WEIGHTS [DATA [EPOCHS]]]
 *
 * WEIGHTS: a VGG16 notop file (.h5 / .safetensors), "imagenet" (fetched into
 * the cache, the default) or "none" (random weights, for a smoke run);
 * DATA: a CIFAR-10 directory/archive or "cifar10" (fetched, the default).  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graft.h"

#define GR_CHECK(expr)                                                     \
    do {                                                                   \
        if ((expr) != GR_OK) {                                             \
            fprintf(stderr, "seed_cifar10: error: %s\n", err.msg);         \
            return 1;                                                      \
        }                                                                  \
    } while (0)
#define GR_CHECK_PTR(p) GR_CHECK((p) ? GR_OK : err.code)

/* Keras prints each epoch (verbose=1); graft prints nothing unless the
 * program installs a log callback: here epochs and notes on stdout,
 * warnings on stderr, progress dropped. */
static void print_log(void *user, gr_log_level level, const char *msg) {
    (void)user;
    if (level == GR_LOG_PROGRESS || level == GR_LOG_DEBUG) return;
    if (level <= GR_LOG_WARN) fprintf(stderr, "seed_cifar10: %s: %s\n", gr_log_level_name(level), msg);
    else printf("%s\n", msg);
}

int main(int argc, char **argv) {
    gr_set_log(print_log, NULL);
    const char *weights = argc > 1 ? argv[1] : "imagenet";
    const char *data = argc > 2 ? argv[2] : "cifar10";
    int epochs = argc > 3 ? atoi(argv[3]) : 20;
    gr_error err = {0};
    char wpath[4096], dpath[4096];

    /* (x_train, y_train), (x_test, y_test) = cifar10.load_data() */
    if (!strcmp(data, "cifar10")) GR_CHECK(gr_fetch_resolve("cifar10", NULL, NULL, dpath, sizeof dpath, &err));
    else snprintf(dpath, sizeof dpath, "%s", data);
    gr_dataset *train = gr_dataset_open(dpath, &(gr_dataset_opts){.split = GR_SPLIT_TRAIN, .preprocess = GR_PREP_CAFFE}, &err);
    GR_CHECK_PTR(train);
    gr_dataset *test = gr_dataset_open(dpath, &(gr_dataset_opts){.split = GR_SPLIT_TEST, .preprocess = GR_PREP_CAFFE}, &err);
    GR_CHECK_PTR(test);

    /* base_model = VGG16(weights='imagenet', include_top=False, input_shape=(32, 32, 3)) */
    gr_model *model = gr_vgg16(32, 32, false, &err);
    GR_CHECK_PTR(model);
    if (strcmp(weights, "none")) {
        if (!strcmp(weights, "imagenet")) GR_CHECK(gr_fetch_resolve("vgg16", NULL, NULL, wpath, sizeof wpath, &err));
        else snprintf(wpath, sizeof wpath, "%s", weights);
        GR_CHECK(gr_model_load_weights(model, wpath, NULL, &err));
    }
    int base_top = gr_model_num_layers(model) - 1;     /* block5_pool */

    /* x = Flatten()(base_model.output); x = Dense(1024, activation='relu')(x)
     * predictions = Dense(10, activation='softmax')(x)                       */
    GR_CHECK(gr_stack(model, &err, gr_flatten(), gr_dense(1024, GR_ACT_RELU), gr_dense(10, GR_ACT_SOFTMAX)));

    /* for layer in base_model.layers: layer.trainable = False */
    gr_model_freeze_upto(model, base_top);

    /* model.compile(optimizer=SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True),
     *               loss='categorical_crossentropy', metrics=['accuracy'])
     * model.fit(x_train, y_train, epochs=20, batch_size=32)                  */
    gr_fit_opts fit = {.epochs = epochs, .batch = 32, .seed = 1, .verbose = 1,
                       .optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .decay = 1e-6f, .momentum = 0.9f, .nesterov = true})};
    GR_CHECK(gr_fit(model, train, NULL, 0, &fit, &err));

    /* score = model.evaluate(x_test, y_test) */
    gr_eval_result score;
    GR_CHECK(gr_evaluate(model, test, NULL, 0, 32, &score, &err));
    printf("Test loss: %.4f\nTest accuracy: %.4f\n", score.loss, score.accuracy);

    gr_eval_result_free(&score);
    gr_model_free(model);
    gr_dataset_free(train);
    gr_dataset_free(test);
    return 0;
}
