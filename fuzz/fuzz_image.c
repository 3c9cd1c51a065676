/* fuzz_image.c — image decoding (src/data/images.c: the libjpeg and libpng
 * wrappers and graft's own BMP reader) from memory, then both resize modes
 * to a small odd size.                                                    */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gr_image img = {0};
    gr_error err = {0};
    if (gr_image_decode(data, size, "fuzz-input", &img, &err) != GR_OK) {
        fuzz_check_error(&err, "gr_image_decode");
        return 0;
    }
    if (img.h <= 0 || img.w <= 0 || !img.data) abort();
    static float out[7 * 5 * 3];
    if (gr_image_resize(&img, 7, 5, GR_RESIZE_STRETCH, out, &err) != GR_OK) fuzz_check_error(&err, "resize");
    if (gr_image_resize(&img, 5, 7, GR_RESIZE_CENTER_CROP, out, &err) != GR_OK) fuzz_check_error(&err, "resize");
    gr_image_free(&img);
    return 0;
}
