/* files.c — the report's files: its directory, run.json (written
 * atomically), PNG thumbnails (libpng). */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graph/model.h"
#include "report/report.h"

gr_status gr_report_mkdir(const char *dir, gr_error *err) {
    char p[4096];
    int len = snprintf(p, sizeof p, "%s", dir);
    if (len <= 0 || (size_t)len >= sizeof p) return gr_error_set(err, GR_ERR_ARG, "report directory: bad path '%s'", dir);
    for (char *s = p + 1; ; s++) {
        char c = *s;
        if (c != '/' && c != 0) continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return gr_error_set(err, GR_ERR_IO, "%s: cannot create the directory: %s", p, strerror(errno));
        *s = c;
        if (!c) break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return gr_error_set(err, GR_ERR_IO, "%s: not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot write into the directory: %s", dir, strerror(errno));
    return GR_OK;
}

gr_status gr_report_save(const char *dir, json_object *run, gr_error *err) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/run.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    const char *txt = json_object_to_json_string_ext(run, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!txt) return gr_error_set(err, GR_ERR_NOMEM, "out of memory (run record)");
    FILE *f = fopen(tmp, "w");
    if (!f) return gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    bool ok = fputs(txt, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return GR_OK;
}

json_object *gr_report_load(const char *dir, gr_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (access(path, R_OK) != 0) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot read the run record: %s (is %s a report directory written by "
                     "--report?)", path, strerror(errno), dir);
        return NULL;
    }
    json_object *o = json_object_from_file(path);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a run record (expected a JSON object): %s", path,
                     json_util_get_last_err() ? json_util_get_last_err() : "");
        return NULL;
    }
    return o;
}

gr_status gr_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w, gr_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = calloc((size_t)h, sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        return gr_error_set(err, GR_ERR_NOMEM, "out of memory (writing %s)", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        unlink(path);
        return gr_error_set(err, GR_ERR_IO, "%s: libpng failed to write the image", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(rgb + (size_t)y * w * 3);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(f) != 0) return gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return GR_OK;
}
