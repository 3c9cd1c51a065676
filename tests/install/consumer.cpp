// consumer.cpp — a C++ program using the installed graft the way it uses any
// library: #include <graft.h>, flags from `pkg-config graft`.  It builds a
// small darknet network, runs it on an image, and checks the probabilities
// and that the header and the linked library are the same version.
#include <graft.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 2) { std::fprintf(stderr, "usage: consumer CFG\n"); return 2; }
    if (std::strcmp(gr_version(), GRAFT_VERSION) != 0) {
        std::fprintf(stderr, "header %s but library %s\n", GRAFT_VERSION, gr_version());
        return 1;
    }
    gr_error err{};
    gr_model *m = gr_darknet_load_cfg(argv[1], 32, 32, &err);
    if (!m) { std::fprintf(stderr, "consumer: error: %s\n", err.msg); return 1; }
    int n = gr_model_num_layers(m), h, w, c;
    gr_model_layer_shape(m, n - 1, &h, &w, &c);
    std::vector<float> x(32 * 32 * 3, 0.5f), y((size_t)h * w * c);
    if (gr_model_predict(m, x.data(), 1, -1, y.data(), &err) != GR_OK) {
        std::fprintf(stderr, "consumer: error: %s\n", err.msg);
        return 1;
    }
    double sum = 0;
    for (float v : y) sum += v;
    std::printf("graft %s: %d layers, %d outputs, sum %.4f\n", gr_version(), n, h * w * c, sum);
    gr_model_free(m);
    return std::fabs(sum - 1.0) < 1e-4 ? 0 : 1;
}
