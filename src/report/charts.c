/* charts.c — the report's charts, drawn with cairo to PNG and SVG: line
 * charts (loss, accuracy, learning rate per epoch) and the confusion matrix
 * as a heatmap. */
#include <cairo.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "report/report.h"

#define FONT "DejaVu Sans"

static void rgb(cairo_t *cr, unsigned c) {
    cairo_set_source_rgb(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

/* Text at (x, y): ax, ay = anchor (0 left/top, 0.5 centre, 1 right/bottom). */
static void text(cairo_t *cr, double x, double y, double ax, double ay, const char *s) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    cairo_move_to(cr, x - te.x_advance * ax, y - te.y_bearing - te.height * ay);
    cairo_show_text(cr, s);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for range r. */
static double nice_step(double r, int target) {
    double raw = r / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) { snprintf(buf, cap, "0"); return; }
    if (step < 1e-3 || fabs(v) >= 1e5) { snprintf(buf, cap, "%.1e", v); return; }   /* one style per axis */
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, cap, "%.*f", dec, v);
}

/* A line chart's plot area (left L, top T, pw x ph pixels) and its data range. */
typedef struct {
    double L, T, pw, ph;
    double x0, x1, y0, y1, ys;   /* ys: the y tick step */
} frame;

static double px(const frame *f, double v) { return f->L + (v - f->x0) / (f->x1 - f->x0) * f->pw; }
static double py(const frame *f, double v) { return f->T + f->ph - (v - f->y0) / (f->y1 - f->y0) * f->ph; }

/* The range of the finite points, padded, y on whole tick steps. */
static void lines_range(frame *f, const gr_chart_series *s, int ns) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i]) || !isfinite(s[k].x[i])) continue;
            x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 - x0 < 1) { x0 -= 0.5; x1 += 0.5; }
    else { double pad = (x1 - x0) * 0.04; x0 -= pad; x1 += pad; }   /* the first and last points off the frame */
    if (y1 - y0 < 1e-12) { double d = fabs(y0) > 0 ? fabs(y0) * 0.1 : 1; y0 -= d; y1 += d; }
    double ys = nice_step(y1 - y0, 5);
    f->y0 = floor(y0 / ys) * ys;
    f->y1 = ceil(y1 / ys) * ys;
    f->x0 = x0;
    f->x1 = x1;
    f->ys = ys;
}

/* Grid lines, tick labels, the frame; the best-epoch and early-stop markers. */
static void draw_grid(cairo_t *cr, const frame *f, const gr_chart_opts *o) {
    double L = f->L, T = f->T, pw = f->pw, ph = f->ph, ys = f->ys;
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    char buf[32];
    for (double v = f->y0; v <= f->y1 + ys * 1e-6; v += ys) {
        rgb(cr, 0xe6e6e6);
        cairo_move_to(cr, L, round(py(f, v)) + 0.5); cairo_line_to(cr, L + pw, round(py(f, v)) + 0.5); cairo_stroke(cr);
        rgb(cr, 0x444444);
        fmt_tick(buf, sizeof buf, v, ys);
        text(cr, L - 6, py(f, v), 1, 0.5, buf);
    }
    double xs = fmax(1, nice_step(f->x1 - f->x0, 8));
    for (double v = ceil(f->x0 / xs) * xs; v <= f->x1 + 1e-9; v += xs) {
        rgb(cr, 0xf0f0f0);
        cairo_move_to(cr, round(px(f, v)) + 0.5, T); cairo_line_to(cr, round(px(f, v)) + 0.5, T + ph); cairo_stroke(cr);
        rgb(cr, 0x444444);
        snprintf(buf, sizeof buf, "%g", v);
        text(cr, px(f, v), T + ph + 6, 0.5, 0, buf);
    }
    rgb(cr, 0x888888);
    cairo_rectangle(cr, L + 0.5, T + 0.5, pw - 1, ph - 1);
    cairo_stroke(cr);
    /* markers: best epoch, early stop */
    const double mx[2] = {o->best_x, o->stop_x};
    const char *ml[2] = {"best", "early stop"};
    const unsigned mc[2] = {0x2e7d32, 0xc62828};
    for (int k = 0; k < 2; k++) {
        if (!isfinite(mx[k]) || mx[k] < f->x0 || mx[k] > f->x1) continue;
        rgb(cr, mc[k]);
        double d[2] = {5, 4};
        cairo_set_dash(cr, d, 2, 0);
        cairo_move_to(cr, px(f, mx[k]), T); cairo_line_to(cr, px(f, mx[k]), T + ph); cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        bool right = k == 1 || px(f, mx[k]) > L + 0.85 * pw;   /* the label inside the frame */
        text(cr, px(f, mx[k]) + (right ? -4 : 4), T + 4 + 14 * k, right ? 1 : 0, 0, ml[k]);
    }
}

/* The series, clipped to the frame: lines with dots, or diamonds (points). */
static void draw_series(cairo_t *cr, const frame *f, const gr_chart_series *s, int ns) {
    cairo_save(cr);
    cairo_rectangle(cr, f->L, f->T, f->pw, f->ph);
    cairo_clip(cr);
    for (int k = 0; k < ns; k++) {
        rgb(cr, s[k].rgb);
        cairo_set_line_width(cr, 2);
        if (s[k].dashed) { double d[2] = {6, 3}; cairo_set_dash(cr, d, 2, 0); }
        bool pen = false;
        for (int i = 0; i < s[k].n && !s[k].points; i++) {
            if (!isfinite(s[k].y[i])) { pen = false; continue; }
            if (pen) cairo_line_to(cr, px(f, s[k].x[i]), py(f, s[k].y[i]));
            else cairo_move_to(cr, px(f, s[k].x[i]), py(f, s[k].y[i]));
            pen = true;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            double r = s[k].points ? 6 : (s[k].n <= 40 ? 2.5 : 0);
            if (r == 0) continue;
            double X = px(f, s[k].x[i]), Y = py(f, s[k].y[i]);
            if (s[k].points) {   /* a diamond */
                cairo_move_to(cr, X, Y - r);
                cairo_line_to(cr, X + r, Y);
                cairo_line_to(cr, X, Y + r);
                cairo_line_to(cr, X - r, Y);
                cairo_close_path(cr);
            } else {
                cairo_arc(cr, X, Y, r, 0, 2 * M_PI);
            }
            cairo_fill(cr);
        }
    }
    cairo_restore(cr);
}

/* Title, axis labels, legend (right to left along the top). */
static void draw_labels(cairo_t *cr, int H, const frame *f, const gr_chart_series *s, int ns,
                        const gr_chart_opts *o) {
    double L = f->L, T = f->T, pw = f->pw, ph = f->ph;
    rgb(cr, 0x222222);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 14);
    if (o->title) text(cr, L, 10, 0, 0, o->title);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    if (o->xlabel) text(cr, L + pw / 2, H - 16, 0.5, 0, o->xlabel);
    if (o->ylabel) {
        cairo_save(cr);
        cairo_translate(cr, 14, T + ph / 2);
        cairo_rotate(cr, -M_PI / 2);
        text(cr, 0, 0, 0.5, 0.5, o->ylabel);
        cairo_restore(cr);
    }
    double lx = L + pw - 10;
    cairo_set_font_size(cr, 11);
    for (int k = ns - 1; k >= 0; k--) {
        if (!s[k].name) continue;
        bool any = false;
        for (int i = 0; i < s[k].n; i++) any |= isfinite(s[k].y[i]);
        if (!any) continue;
        cairo_text_extents_t te;
        cairo_text_extents(cr, s[k].name, &te);
        lx -= te.x_advance;
        rgb(cr, 0x333333);
        text(cr, lx, 18, 0, 0.5, s[k].name);
        rgb(cr, s[k].rgb);
        if (s[k].points) {   /* the diamond the chart draws */
            cairo_move_to(cr, lx - 10, 13); cairo_line_to(cr, lx - 5, 18); cairo_line_to(cr, lx - 10, 23);
            cairo_line_to(cr, lx - 15, 18); cairo_close_path(cr); cairo_fill(cr);
        }
        else { cairo_set_line_width(cr, 2); cairo_move_to(cr, lx - 24, 18); cairo_line_to(cr, lx - 4, 18); cairo_stroke(cr); }
        lx -= 36;
    }
}

static void draw_lines(cairo_t *cr, int W, int H, const gr_chart_series *s, int ns, const gr_chart_opts *o) {
    rgb(cr, 0xffffff);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    frame f = {.L = 70, .T = 36};
    const double R = 20, B = 48;
    f.pw = W - f.L - R;
    f.ph = H - f.T - B;
    lines_range(&f, s, ns);
    draw_grid(cr, &f, o);
    draw_series(cr, &f, s, ns);
    draw_labels(cr, H, &f, s, ns, o);
}

/* Draws with fn into a PNG (and an SVG when svg != NULL) of W x H. */
static gr_status render(const char *png, const char *svg, int W, int H,
                        void (*fn)(cairo_t *, int, int, const void *), const void *arg, gr_error *err) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(sf);
    fn(cr, W, H, arg);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_write_to_png(sf, png);
    cairo_surface_destroy(sf);
    if (cs != CAIRO_STATUS_SUCCESS)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot draw the chart: %s", png, cairo_status_to_string(cs));
    if (svg) {
        sf = cairo_svg_surface_create(svg, W, H);
        cr = cairo_create(sf);
        fn(cr, W, H, arg);
        cs = cairo_status(cr);
        cairo_destroy(cr);
        cairo_surface_finish(sf);
        if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(sf);
        cairo_surface_destroy(sf);
        if (cs != CAIRO_STATUS_SUCCESS)
            return gr_error_set(err, GR_ERR_IO, "%s: cannot draw the chart: %s", svg, cairo_status_to_string(cs));
    }
    return GR_OK;
}

typedef struct { const gr_chart_series *s; int ns; const gr_chart_opts *o; } lines_arg;
static void lines_cb(cairo_t *cr, int W, int H, const void *a) {
    const lines_arg *l = a;
    draw_lines(cr, W, H, l->s, l->ns, l->o);
}

gr_status gr_chart_lines(const char *png, const char *svg, const gr_chart_series *s, int ns,
                         const gr_chart_opts *o, gr_error *err) {
    int W = o->width > 0 ? o->width : 640, H = o->height > 0 ? o->height : 360;
    lines_arg a = {s, ns, o};
    return render(png, svg, W, H, lines_cb, &a, err);
}

/* ---- confusion matrix ---- */
typedef struct { const int64_t *m; int C; const char *const *names; int cell, left, top; } conf_arg;

static void conf_cb(cairo_t *cr, int W, int H, const void *a) {
    const conf_arg *c = a;
    int C = c->C, cell = c->cell, L = c->left, T = c->top;
    rgb(cr, 0xffffff);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int i = 0; i < C; i++) {
        int64_t row = 0;
        for (int j = 0; j < C; j++) row += c->m[(size_t)i * C + j];
        for (int j = 0; j < C; j++) {
            int64_t v = c->m[(size_t)i * C + j];
            double f = row ? (double)v / row : 0;   /* the share of the true class */
            /* white -> blue (correct) or white -> orange (mistakes) */
            double r = i == j ? 1 - 0.85 * f : 1 - 0.05 * fmin(1, 3 * f);
            double g = i == j ? 1 - 0.55 * f : 1 - 0.55 * fmin(1, 3 * f);
            double b = i == j ? 1 - 0.15 * f : 1 - 0.9 * fmin(1, 3 * f);
            cairo_set_source_rgb(cr, r, g, b);
            cairo_rectangle(cr, L + j * cell, T + i * cell, cell, cell);
            cairo_fill(cr);
            if (cell >= 22) {
                char buf[24];
                snprintf(buf, sizeof buf, "%lld", (long long)v);
                cairo_set_font_size(cr, cell >= 40 ? 12 : 9);
                double lum = 0.3 * r + 0.59 * g + 0.11 * b;
                if (lum < 0.5) rgb(cr, 0xffffff); else rgb(cr, 0x222222);
                text(cr, L + j * cell + cell / 2.0, T + i * cell + cell / 2.0, 0.5, 0.5, buf);
            }
        }
    }
    rgb(cr, 0x999999);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L + 0.5, T + 0.5, C * cell - 1, C * cell - 1);
    cairo_stroke(cr);
    /* labels: rows (true) on the left, columns (predicted) on top, rotated */
    rgb(cr, 0x222222);
    double fs = cell >= 16 ? 11 : fmax(6, cell * 0.8);
    cairo_set_font_size(cr, fs);
    for (int i = 0; i < C; i++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.18s", c->names && c->names[i] ? c->names[i] : "?");
        text(cr, L - 5, T + i * cell + cell / 2.0, 1, 0.5, buf);
        cairo_save(cr);
        cairo_translate(cr, L + i * cell + cell / 2.0, T - 5);
        cairo_rotate(cr, -M_PI / 4);
        text(cr, 0, 0, 0, 0.5, buf);
        cairo_restore(cr);
    }
    cairo_set_font_size(cr, 12);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    text(cr, L + C * cell / 2.0, H - 8, 0.5, 1, "predicted class");
    cairo_save(cr);
    cairo_translate(cr, 12, T + C * cell / 2.0);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, 0.5, 0.5, "true class");
    cairo_restore(cr);
    (void)W;
}

gr_status gr_chart_confusion(const char *png, const char *svg, const int64_t *conf, int C,
                             const char *const *names, int *w, int *h, gr_error *err) {
    if (C <= 0) return gr_error_set(err, GR_ERR_ARG, "%s: a confusion matrix needs at least one class", png);
    int cell = C <= 12 ? 44 : C <= 20 ? 30 : C <= 50 ? 14 : 8;
    conf_arg a = {conf, C, names, cell, 130, 110};
    *w = a.left + C * cell + 60;
    *h = a.top + C * cell + 30;
    return render(png, svg, *w, *h, conf_cb, &a, err);
}
