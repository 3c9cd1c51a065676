/* winograd_tx.h — the Winograd tile transforms, written once over a vector
 * of WV channels; included by winograd.c (WV = 1, plain C) and by
 * winograd_avx2.c (WV = 8, AVX2), which define first:
 *   wv, wmask       the vector and lane-mask types
 *   WV              lanes per vector
 *   WMASK(n)        a mask of the first n lanes (1 <= n <= WV)
 *   WLD(p, k)       load the lanes of mask k (others 0); WST(p, k, v) store them
 *   WZERO, WSET(x)  broadcasts
 *   WADD, WSUB      lane-wise a + b, a - b
 *   WMULC(c, v)     c * v, c a float constant
 *   WACT(v, act, al)  the fused activation (GR_WINO_ACT_*), al = WSET(alpha)
 *   WT(name)        the function names' suffix
 * Every operation is written out in one order and none is fused (no FMA),
 * so both instantiations round identically.
 *
 * Layouts (winograd.h): V [a*a][nt][C], M [a*a][nt][OC], position k = a*row
 * + column of the transformed tile; tile t of the chunk is global tile
 * tile0 + t = (b * th + ty) * tw + tx.                                      */

/* F(4x4,3x3) input, one line: Bt (6x6) times d0..d5 */
#define WINO_BT6(d0, d1, d2, d3, d4, d5, t0, t1, t2, t3, t4, t5)       \
    do {                                                                 \
        t0 = WADD(WSUB(WMULC(4.0f, d0), WMULC(5.0f, d2)), d4);           \
        t1 = WSUB(WADD(d3, d4), WMULC(4.0f, WADD(d1, d2)));              \
        t2 = WADD(WSUB(d4, d3), WMULC(4.0f, WSUB(d1, d2)));              \
        t3 = WADD(WSUB(d4, d2), WMULC(2.0f, WSUB(d3, d1)));              \
        t4 = WADD(WSUB(d4, d2), WMULC(2.0f, WSUB(d1, d3)));              \
        t5 = WADD(WSUB(WMULC(4.0f, d1), WMULC(5.0f, d3)), d5);           \
    } while (0)

/* F(4x4,3x3) output, one line: At (4x6) times m0..m5 */
#define WINO_AT6(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                 \
    do {                                                                 \
        wv s12_ = WADD(m1, m2), d12_ = WSUB(m1, m2);                     \
        wv s34_ = WADD(m3, m4), d34_ = WSUB(m3, m4);                     \
        y0 = WADD(WADD(m0, s12_), s34_);                                 \
        y1 = WADD(d12_, WMULC(2.0f, d34_));                              \
        y2 = WADD(s12_, WMULC(4.0f, s34_));                              \
        y3 = WADD(WADD(d12_, WMULC(8.0f, d34_)), m5);                    \
    } while (0)

/* F(2x2,3x3) input, one line: Bt (4x4) times d0..d3 */
#define WINO_BT4(d0, d1, d2, d3, t0, t1, t2, t3)                         \
    do {                                                                 \
        t0 = WSUB(d0, d2);                                               \
        t1 = WADD(d1, d2);                                               \
        t2 = WSUB(d2, d1);                                               \
        t3 = WSUB(d1, d3);                                               \
    } while (0)

/* F(2x2,3x3) output, one line: At (2x4) times m0..m3 */
#define WINO_AT4(m0, m1, m2, m3, y0, y1)                                 \
    do {                                                                 \
        y0 = WADD(WADD(m0, m1), m2);                                     \
        y1 = WSUB(WSUB(m1, m2), m3);                                     \
    } while (0)

/* Loads the a x a window of tile (iy0, ix0) of image img ([H][W][C], at the
 * channel block), cells outside the image as 0. */
#define WINO_LOAD_WINDOW(A, d)                                                       \
    for (int i_ = 0; i_ < A; i_++)                                                   \
        for (int j_ = 0; j_ < A; j_++) {                                             \
            int y_ = iy0 + i_, x_ = ix0 + j_;                                        \
            d[i_][j_] = y_ >= 0 && y_ < p->H && x_ >= 0 && x_ < p->W                 \
                            ? WLD(img + ((size_t)y_ * p->W + (size_t)x_) * (size_t)C, mk) \
                            : WZERO;                                                 \
        }

static void WT(input6)(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                       int t_begin, int t_end) {
    const int C = p->C;
    const size_t ds = (size_t)nt * C;
    for (int t = t_begin; t < t_end; t++) {
        int g = tile0 + t, tx = g % p->tw, ty = (g / p->tw) % p->th, b = g / (p->tw * p->th);
        int iy0 = ty * 4 - p->pad_t, ix0 = tx * 4 - p->pad_l;
        for (int c = 0; c < C; c += WV) {
            wmask mk = WMASK(C - c < WV ? C - c : WV);
            const float *img = in + (size_t)b * p->H * p->W * C + c;
            float *dst = V + (size_t)t * C + c;
            wv d[6][6], u[6][6];
            WINO_LOAD_WINDOW(6, d);
            for (int j = 0; j < 6; j++)
                WINO_BT6(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j], u[0][j], u[1][j],
                         u[2][j], u[3][j], u[4][j], u[5][j]);
            for (int i = 0; i < 6; i++) {
                wv o0, o1, o2, o3, o4, o5;
                WINO_BT6(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], o0, o1, o2, o3, o4,
                         o5);
                float *r = dst + (size_t)(6 * i) * ds;
                WST(r, mk, o0);
                WST(r + ds, mk, o1);
                WST(r + 2 * ds, mk, o2);
                WST(r + 3 * ds, mk, o3);
                WST(r + 4 * ds, mk, o4);
                WST(r + 5 * ds, mk, o5);
            }
        }
    }
}

static void WT(input4)(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                       int t_begin, int t_end) {
    const int C = p->C;
    const size_t ds = (size_t)nt * C;
    for (int t = t_begin; t < t_end; t++) {
        int g = tile0 + t, tx = g % p->tw, ty = (g / p->tw) % p->th, b = g / (p->tw * p->th);
        int iy0 = ty * 2 - p->pad_t, ix0 = tx * 2 - p->pad_l;
        for (int c = 0; c < C; c += WV) {
            wmask mk = WMASK(C - c < WV ? C - c : WV);
            const float *img = in + (size_t)b * p->H * p->W * C + c;
            float *dst = V + (size_t)t * C + c;
            wv d[4][4], u[4][4];
            WINO_LOAD_WINDOW(4, d);
            for (int j = 0; j < 4; j++)
                WINO_BT4(d[0][j], d[1][j], d[2][j], d[3][j], u[0][j], u[1][j], u[2][j], u[3][j]);
            for (int i = 0; i < 4; i++) {
                wv o0, o1, o2, o3;
                WINO_BT4(u[i][0], u[i][1], u[i][2], u[i][3], o0, o1, o2, o3);
                float *r = dst + (size_t)(4 * i) * ds;
                WST(r, mk, o0);
                WST(r + ds, mk, o1);
                WST(r + 2 * ds, mk, o2);
                WST(r + 3 * ds, mk, o3);
            }
        }
    }
}

/* Stores row i of the output tile (nc <= m cells), bias and activation
 * applied; p->accum: added to what out holds (no bias, linear). */
#define WINO_STORE_ROW(y, n)                                                              \
    do {                                                                                  \
        float *row_ = out + (((size_t)b * p->OH + (size_t)(oy0 + i)) * p->OW + (size_t)ox0) * OC + o; \
        if (p->accum)                                                                     \
            for (int j_ = 0; j_ < (n); j_++) WST(row_ + (size_t)j_ * OC, mk, WADD(WLD(row_ + (size_t)j_ * OC, mk), y[j_])); \
        else                                                                              \
            for (int j_ = 0; j_ < (n); j_++) WST(row_ + (size_t)j_ * OC, mk, WACT(WADD(y[j_], bv), p->act, al)); \
    } while (0)

static void WT(output6)(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                        int tile0, int nt, int t_begin, int t_end) {
    const int OC = p->OC;
    const size_t ss = (size_t)nt * OC;
    const wv al = WSET(p->alpha);
    for (int t = t_begin; t < t_end; t++) {
        int g = tile0 + t, tx = g % p->tw, ty = (g / p->tw) % p->th, b = g / (p->tw * p->th);
        int oy0 = ty * 4, ox0 = tx * 4;
        int nr = p->OH - oy0 < 4 ? p->OH - oy0 : 4, nc = p->OW - ox0 < 4 ? p->OW - ox0 : 4;
        for (int o = 0; o < OC; o += WV) {
            wmask mk = WMASK(OC - o < WV ? OC - o : WV);
            const float *src = M + (size_t)t * OC + o;
            wv bv = bias ? WLD(bias + o, mk) : WZERO;
            wv mm[6][6], u[4][6];
            for (int k = 0; k < 36; k++) mm[k / 6][k % 6] = WLD(src + (size_t)k * ss, mk);
            for (int j = 0; j < 6; j++)
                WINO_AT6(mm[0][j], mm[1][j], mm[2][j], mm[3][j], mm[4][j], mm[5][j], u[0][j],
                         u[1][j], u[2][j], u[3][j]);
            for (int i = 0; i < nr; i++) {
                wv y[4];
                WINO_AT6(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], y[0], y[1], y[2],
                         y[3]);
                WINO_STORE_ROW(y, nc);
            }
        }
    }
}

static void WT(output4)(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                        int tile0, int nt, int t_begin, int t_end) {
    const int OC = p->OC;
    const size_t ss = (size_t)nt * OC;
    const wv al = WSET(p->alpha);
    for (int t = t_begin; t < t_end; t++) {
        int g = tile0 + t, tx = g % p->tw, ty = (g / p->tw) % p->th, b = g / (p->tw * p->th);
        int oy0 = ty * 2, ox0 = tx * 2;
        int nr = p->OH - oy0 < 2 ? p->OH - oy0 : 2, nc = p->OW - ox0 < 2 ? p->OW - ox0 : 2;
        for (int o = 0; o < OC; o += WV) {
            wmask mk = WMASK(OC - o < WV ? OC - o : WV);
            const float *src = M + (size_t)t * OC + o;
            wv bv = bias ? WLD(bias + o, mk) : WZERO;
            wv mm[4][4], u[2][4];
            for (int k = 0; k < 16; k++) mm[k / 4][k % 4] = WLD(src + (size_t)k * ss, mk);
            for (int j = 0; j < 4; j++)
                WINO_AT4(mm[0][j], mm[1][j], mm[2][j], mm[3][j], u[0][j], u[1][j]);
            for (int i = 0; i < nr; i++) {
                wv y[2];
                WINO_AT4(u[i][0], u[i][1], u[i][2], u[i][3], y[0], y[1]);
                WINO_STORE_ROW(y, nc);
            }
        }
    }
}

/* Weight gradient: the dout tile's transform, one line: A^T (a x m) times y */
#define WINO_ATT6(y0, y1, y2, y3, d0, d1, d2, d3, d4, d5)                \
    do {                                                                 \
        wv s02_ = WADD(y0, y2), s13_ = WADD(y1, y3);                     \
        wv e_ = WADD(y0, WMULC(4.0f, y2)), f_ = WADD(WMULC(2.0f, y1), WMULC(8.0f, y3)); \
        d0 = y0;                                                         \
        d1 = WADD(s02_, s13_);                                           \
        d2 = WSUB(s02_, s13_);                                           \
        d3 = WADD(e_, f_);                                               \
        d4 = WSUB(e_, f_);                                               \
        d5 = y3;                                                         \
    } while (0)
#define WINO_ATT4(y0, y1, d0, d1, d2, d3)                                \
    do {                                                                 \
        d0 = y0;                                                         \
        d1 = WADD(y0, y1);                                               \
        d2 = WSUB(y0, y1);                                               \
        d3 = WSUB(WZERO, y1);                                            \
    } while (0)

/* D [a*a][nt][OC] = A^T dY A for the chunk's tiles of dout [B][OH][OW][OC]
 * (cells past the output's edge are 0). */
#define WINO_GRADOUT(NAME, MM, AA, ATT_COLS, ATT_ROWS)                                           \
static void WT(NAME)(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt,      \
                     int t_begin, int t_end) {                                                   \
    const int OC = p->OC;                                                                        \
    const size_t ds = (size_t)nt * OC;                                                           \
    for (int t = t_begin; t < t_end; t++) {                                                      \
        int g = tile0 + t, tx = g % p->tw, ty = (g / p->tw) % p->th, b = g / (p->tw * p->th);     \
        int oy0 = ty * MM, ox0 = tx * MM;                                                        \
        int nr = p->OH - oy0 < MM ? p->OH - oy0 : MM, nc = p->OW - ox0 < MM ? p->OW - ox0 : MM;   \
        for (int o = 0; o < OC; o += WV) {                                                       \
            wmask mk = WMASK(OC - o < WV ? OC - o : WV);                                         \
            wv y[MM][MM], u[AA][MM];                                                             \
            for (int i = 0; i < MM; i++)                                                         \
                for (int j = 0; j < MM; j++)                                                     \
                    y[i][j] = i < nr && j < nc                                                   \
                                  ? WLD(dout + (((size_t)b * p->OH + (size_t)(oy0 + i)) * p->OW + \
                                                (size_t)(ox0 + j)) * OC + o, mk)                 \
                                  : WZERO;                                                       \
            for (int j = 0; j < MM; j++) ATT_COLS;                                               \
            for (int k = 0; k < AA; k++) {                                                       \
                wv r_[AA];                                                                       \
                ATT_ROWS;                                                                        \
                float *dst = D + (size_t)t * OC + o + (size_t)(AA * k) * ds;                     \
                for (int l = 0; l < AA; l++) WST(dst + (size_t)l * ds, mk, r_[l]);               \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}
WINO_GRADOUT(gradout6, 4, 6,
             WINO_ATT6(y[0][j], y[1][j], y[2][j], y[3][j], u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]),
             WINO_ATT6(u[k][0], u[k][1], u[k][2], u[k][3], r_[0], r_[1], r_[2], r_[3], r_[4], r_[5]))
WINO_GRADOUT(gradout4, 2, 4, WINO_ATT4(y[0][j], y[1][j], u[0][j], u[1][j], u[2][j], u[3][j]),
             WINO_ATT4(u[k][0], u[k][1], r_[0], r_[1], r_[2], r_[3]))

/* ---- the weight side: U = G g Gt (weights) and dW = Gt M G (weight
 * gradient), G's zeros and repeats used (about a third of the multiplies
 * of the plain products), in float */

/* t[0..5] = G (6x3) (g0, g1, g2) for F(4x4,3x3) */
#define WINO_G6(g0, g1, g2, t)                                           \
    do {                                                                 \
        wv a_ = WADD(g0, g2);                                            \
        wv b_ = WADD(WMULC(1.0f / 24, g0), WMULC(1.0f / 6, g2));         \
        wv c_ = WMULC(1.0f / 12, g1);                                    \
        t[0] = WMULC(0.25f, g0);                                         \
        t[1] = WMULC(-1.0f / 6, WADD(a_, g1));                           \
        t[2] = WMULC(-1.0f / 6, WSUB(a_, g1));                           \
        t[3] = WADD(b_, c_);                                             \
        t[4] = WSUB(b_, c_);                                             \
        t[5] = g2;                                                       \
    } while (0)
/* t[0..3] = G (4x3) (g0, g1, g2) for F(2x2,3x3) */
#define WINO_G4(g0, g1, g2, t)                                           \
    do {                                                                 \
        wv a_ = WMULC(0.5f, WADD(g0, g2)), c_ = WMULC(0.5f, g1);         \
        t[0] = g0;                                                       \
        t[1] = WADD(a_, c_);                                             \
        t[2] = WSUB(a_, c_);                                             \
        t[3] = g2;                                                       \
    } while (0)
/* r[0..2] = Gt (3x6) (m0..m5) */
#define WINO_GT6(mm, r)                                                                   \
    do {                                                                                  \
        wv a12_ = WADD(mm[1], mm[2]), d12_ = WSUB(mm[2], mm[1]);                          \
        wv a34_ = WADD(mm[3], mm[4]), d34_ = WSUB(mm[3], mm[4]);                          \
        r[0] = WADD(WSUB(WMULC(0.25f, mm[0]), WMULC(1.0f / 6, a12_)), WMULC(1.0f / 24, a34_)); \
        r[1] = WADD(WMULC(1.0f / 6, d12_), WMULC(1.0f / 12, d34_));                       \
        r[2] = WADD(WSUB(WMULC(1.0f / 6, a34_), WMULC(1.0f / 6, a12_)), mm[5]);           \
    } while (0)
/* r[0..2] = Gt (3x4) (m0..m3) */
#define WINO_GT4(mm, r)                                                  \
    do {                                                                 \
        wv h_ = WMULC(0.5f, WADD(mm[1], mm[2]));                         \
        r[0] = WADD(mm[0], h_);                                          \
        r[1] = WMULC(0.5f, WSUB(mm[1], mm[2]));                          \
        r[2] = WADD(h_, mm[3]);                                          \
    } while (0)

/* U [a*a][C][OC] from the 3x3 filters g(ky, kx, c, o) = w0[ky*sy + kx*sx +
 * c*sc + o*so], input channels [c_begin, c_end). */
static void WT(weights)(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                        ptrdiff_t so, float *U, int c_begin, int c_end) {
    const int a = p->a, OC = p->OC;
    const size_t plane = (size_t)p->C * OC;
    for (int c = c_begin; c < c_end; c++)
        for (int o = 0; o < OC; o += WV) {
            const int nl = OC - o < WV ? OC - o : WV;
            wmask mk = WMASK(nl);
            wv g[9], t[6][3];
            for (int k = 0; k < 9; k++) {
                const float *src = w0 + (k / 3) * sy + (k % 3) * sx + (ptrdiff_t)c * sc + (ptrdiff_t)o * so;
                if (so == 1) {
                    g[k] = WLD(src, mk);
                } else {
                    float tmp[WV];
                    for (int l = 0; l < nl; l++) tmp[l] = src[(ptrdiff_t)l * so];
                    g[k] = WLD(tmp, mk);
                }
            }
            for (int j = 0; j < 3; j++) {   /* t = G g, column by column */
                wv r[6];
                if (a == 6) WINO_G6(g[j], g[3 + j], g[6 + j], r);
                else WINO_G4(g[j], g[3 + j], g[6 + j], r);
                for (int i = 0; i < a; i++) t[i][j] = r[i];
            }
            for (int i = 0; i < a; i++) {   /* U = t Gt, row by row */
                wv u[6];
                if (a == 6) WINO_G6(t[i][0], t[i][1], t[i][2], u);
                else WINO_G4(t[i][0], t[i][1], t[i][2], u);
                float *dst = U + (size_t)(i * a) * plane + (size_t)c * OC + (size_t)o;
                for (int j = 0; j < a; j++) WST(dst + (size_t)j * plane, mk, u[j]);
            }
        }
}

/* dw [3][3][C][OC] += Gt M G per (c, o), M [a*a][C][OC]; channels [c_begin, c_end). */
static void WT(wgrad)(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end) {
    const int a = p->a, OC = p->OC;
    const size_t plane = (size_t)p->C * OC;
    for (int c = c_begin; c < c_end; c++)
        for (int o = 0; o < OC; o += WV) {
            wmask mk = WMASK(OC - o < WV ? OC - o : WV);
            const size_t at = (size_t)c * OC + (size_t)o;
            wv s[6][3];
            for (int i = 0; i < a; i++) {   /* s = M G, row by row */
                wv mm[6], r[3];
                for (int j = 0; j < a; j++) mm[j] = WLD(M + (size_t)(i * a + j) * plane + at, mk);
                if (a == 6) WINO_GT6(mm, r);
                else WINO_GT4(mm, r);
                s[i][0] = r[0], s[i][1] = r[1], s[i][2] = r[2];
            }
            for (int kx = 0; kx < 3; kx++) {   /* dw += Gt s, column by column */
                wv col[6], r[3];
                for (int i = 0; i < a; i++) col[i] = s[i][kx];
                if (a == 6) WINO_GT6(col, r);
                else WINO_GT4(col, r);
                for (int ky = 0; ky < 3; ky++) {
                    float *dst = dw + (size_t)(ky * 3 + kx) * plane + at;
                    WST(dst, mk, WADD(WLD(dst, mk), r[ky]));
                }
            }
        }
}
