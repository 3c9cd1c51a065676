/* test_feats.c — the float16 features cache (train/feats.h): float32 ->
 * float16 -> float32 against hand-computed IEEE 754 binary16 encodings
 * (normals, ties to even, subnormals, the largest finite, overflow to
 * infinity, signs), the F16C and plain-C conversions bit for bit on every
 * float16 value and on 2^20 random floats, and the cache: rows read back
 * rounded, a value beyond float16's range widening the cache to float32
 * with the rows already stored kept.                                     */
#include "check.h"
#include "train/feats.h"

void gr_f32_to_f16_c(const float *src, uint16_t *dst, size_t n);
void gr_f16_to_f32_c(const uint16_t *src, float *dst, size_t n);

static void test_hand_encodings(void) {
    /* value, its binary16 bits (IEEE 754: sign | 5-bit exponent (bias 15) | 10-bit fraction) */
    static const struct { float v; uint16_t h; } c[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800},
        {65504.0f, 0x7bff},                    /* largest finite: 2^15 * (1 + 1023/1024) */
        {65519.0f, 0x7bff},                    /* below the halfway point to 2^16: rounds down */
        {65520.0f, 0x7c00},                    /* halfway, odd fraction: to even = infinity */
        {1e6f, 0x7c00}, {-1e6f, 0xfc00},
        {1.0f + 1.0f / 2048, 0x3c00},          /* tie between 0x3c00 and 0x3c01: even */
        {1.0f + 3.0f / 2048, 0x3c02},          /* tie between 0x3c01 and 0x3c02: even */
        {1.0f + 1.0f / 4096, 0x3c00},          /* below the tie */
        {0.1f, 0x2e66},                        /* 0.1 = 1.6 * 2^-4: fraction 0.6 * 1024 = 614.4 -> 614 */
        {3.14159265f, 0x4248},                 /* pi = 1.5708 * 2: fraction 0.5708 * 1024 = 584.49 -> 584 */
        {6.103515625e-05f, 0x0400},            /* 2^-14, the smallest normal */
        {5.9604644775390625e-08f, 0x0001},     /* 2^-24, the smallest subnormal */
        {2.98023223876953125e-08f, 0x0000},    /* 2^-25: tie between 0 and 2^-24, even = 0 */
        {8.940696716308594e-08f, 0x0002},      /* 3 * 2^-25: tie between 1 and 2 (x 2^-24), even = 2 */
        {6.097555160522461e-05f, 0x03ff},      /* 1023 * 2^-24, the largest subnormal */
    };
    int n = (int)(sizeof c / sizeof c[0]);
    for (int i = 0; i < n; i++) {
        uint16_t a, b;
        gr_f32_to_f16(&c[i].v, &a, 1);
        gr_f32_to_f16_c(&c[i].v, &b, 1);
        CHECK(a == c[i].h && b == c[i].h, "%.9g: 0x%04x (plain C 0x%04x), want 0x%04x", c[i].v, a, b, c[i].h);
        float back;
        gr_f16_to_f32(&c[i].h, &back, 1);
        if ((c[i].h & 0x7c00) != 0x7c00 && fabsf(c[i].v) <= 65504.0f)
            CHECK(fabsf(back - c[i].v) <= fabsf(c[i].v) / 2048 + 2.98e-8f, "0x%04x reads back as %.9g, not near %.9g",
                  c[i].h, back, c[i].v);
    }
    uint16_t inf = 0x7c00, one = 0x3c00, sub = 0x0001;
    float fi, fo, fs;
    gr_f16_to_f32(&inf, &fi, 1);
    gr_f16_to_f32(&one, &fo, 1);
    gr_f16_to_f32(&sub, &fs, 1);
    CHECK(isinf(fi) && fi > 0 && fo == 1.0f && fs == ldexpf(1.0f, -24), "decode: %g %g %g", fi, fo, fs);
}

/* F16C (where the CPU has it) and plain C agree bit for bit; every finite
 * float16 survives float16 -> float32 -> float16. */
static void test_f16c_equals_plain(void) {
    uint16_t *h = malloc(65536 * sizeof *h), *h2 = malloc(65536 * sizeof *h2), *h3 = malloc(65536 * sizeof *h3);
    float *f = malloc(65536 * sizeof *f), *f2 = malloc(65536 * sizeof *f2);
    CHECK(h && h2 && h3 && f && f2, "memory");
    if (!h || !h2 || !h3 || !f || !f2) goto out;
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    gr_f16_to_f32(h, f, 65536);
    gr_f16_to_f32_c(h, f2, 65536);
    size_t bad = 0;
    for (int i = 0; i < 65536; i++) bad += memcmp(&f[i], &f2[i], 4) != 0 && !(isnan(f[i]) && isnan(f2[i]));
    CHECK(bad == 0, "decode: F16C and plain C differ on %zu values", bad);
    gr_f32_to_f16(f, h2, 65536);
    gr_f32_to_f16_c(f, h3, 65536);
    bad = 0;
    for (int i = 0; i < 65536; i++)
        if ((h[i] & 0x7c00) != 0x7c00 || !(h[i] & 0x3ff)) bad += h2[i] != h[i] || h3[i] != h[i];   /* not NaN */
    CHECK(bad == 0, "%zu float16 values do not survive the round trip", bad);
    gr_rng r;
    gr_rng_seed(&r, 4);
    bad = 0;
    for (int rep = 0; rep < 16; rep++) {   /* random bit patterns, finite, magnitudes 2^-30 .. 2^17 */
        for (int i = 0; i < 65536; i++) {
            uint32_t x = (uint32_t)gr_rng_below(&r, 1u << 23) | ((uint32_t)(97 + gr_rng_below(&r, 48)) << 23) |
                         ((uint32_t)gr_rng_below(&r, 2) << 31);
            memcpy(&f[i], &x, 4);
        }
        gr_f32_to_f16(f, h2, 65536);
        gr_f32_to_f16_c(f, h3, 65536);
        for (int i = 0; i < 65536; i++) bad += h2[i] != h3[i];
    }
    CHECK(bad == 0, "encode: F16C and plain C differ on %zu of 2^20 random floats (F16C %s)", bad,
          gr_f16c() ? "on" : "absent");
out:
    free(h); free(h2); free(h3); free(f); free(f2);
}

static void test_cache_rows_and_widening(void) {
    gr_feats fc;
    gr_error e;
    CHECK(gr_feats_alloc(&fc, 3, 5, true, &e) == GR_OK && gr_feats_bytes(&fc) == 30, "alloc 3 x 5 half");
    if (!fc.p) return;
    float r0[10] = {1.0f, 0.1f, -3.0f, 1000.25f, 0.0f, 2.0f, 2.5f, 1e-7f, 65504.0f, -7.0f};
    CHECK(gr_feats_put(&fc, 0, 2, r0, &e) == GR_OK && fc.half, "rows 0-1 stay float16");
    float got[15];
    gr_feats_get(&fc, 0, 2, got);
    /* hand-rounded: 0.1 -> 0x2e66 = 0.0999755859375; 1000.25 -> 1000 (spacing 0.5 at 512..1024, tie to
     * even 1000.0); 1e-7 -> 2 * 2^-24 (1e-7 / 2^-24 = 1.68 -> 2) */
    float want[10] = {1.0f, 0.0999755859375f, -3.0f, 1000.0f, 0.0f, 2.0f, 2.5f, 2 * 5.9604644775390625e-08f,
                      65504.0f, -7.0f};
    CHECK(!memcmp(got, want, sizeof want), "rounded rows: %.9g %.9g %.9g %.9g", got[1], got[3], got[7], got[8]);
    float r2[5] = {1.0f, 70000.0f, 3.0f, -1.0f, 0.25f};
    CHECK(gr_feats_put(&fc, 2, 1, r2, &e) == GR_OK && !fc.half && gr_feats_bytes(&fc) == 60,
          "a value beyond float16's range: the cache becomes float32");
    gr_feats_get(&fc, 0, 3, got);
    CHECK(!memcmp(got, want, sizeof want) && !memcmp(got + 10, r2, sizeof r2), "rows after widening: %.9g", got[11]);
    gr_feats_free(&fc);
    float x[4] = {0.1f, 70000.0f, 1.0f, 2.0f}, y[3] = {0.1f, 1000.25f, 1.0f};
    gr_f16_round(x, 4);
    gr_f16_round(y, 3);
    CHECK(x[0] == 0.1f && x[1] == 70000.0f && y[0] == 0.0999755859375f && y[1] == 1000.0f,
          "gr_f16_round: %.9g %.9g %.9g", x[0], y[0], y[1]);
}

int main(void) {
    RUN(test_hand_encodings);
    RUN(test_f16c_equals_plain);
    RUN(test_cache_rows_and_widening);
    return check_summary();
}
