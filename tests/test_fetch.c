/* test_fetch.c — digests against known vectors and coreutils, and the real
 * libcurl download code against tests/fixtures/http_server.py on 127.0.0.1:
 * complete download, resume after a dropped connection, a server ignoring
 * Range, digest mismatch, 404, a server that never answers (timeout), known
 * names through GRAFT_FETCH_BASE_URL, mirrors with SHA256SUMS. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "graft.h"
#include "hub/digest.h"
#include "hub/fetch.h"

/* The test server: one per run. */
static pid_t srv_pid = -1;
static int srv_port;
static char srv_root[256], srv_log[300], tmp_root[256];
static unsigned char *blob;           /* the served data.bin */
static const size_t blob_n = 600000;  /* bytes */
static char blob_sha[GR_DIGEST_HEX_MAX];
static const gr_fetch_opts quiet = {NULL, false, false, true};

/* snprintf without -Wformat-truncation noise (paths here are short). */
static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t cap, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static int same_as_blob(const char *path) {
    size_t n;
    unsigned char *b = check_read_file(path, &n);
    int ok = b && n == blob_n && !memcmp(b, blob, n);
    free(b);
    return ok;
}

/* Lines of the server log containing needle. */
static int log_count(const char *needle) {
    FILE *f = fopen(srv_log, "r");
    if (!f) return 0;
    char line[1024];
    int c = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) c++;
    fclose(f);
    return c;
}

/* Runs a shell command and returns its first output line (trimmed) in out. */
static int run_capture(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    out[0] = 0;
    if (!fgets(out, (int)cap, p)) out[0] = 0;
    out[strcspn(out, " \n")] = 0;
    return pclose(p);
}

static int start_server(void) {
    fmt(srv_root, sizeof srv_root, "%s/www", tmp_root);
    fmt(srv_log, sizeof srv_log, "%s/requests.log", tmp_root);
    if (mkdir(srv_root, 0755)) return -1;
    int fds[2];
    if (pipe(fds)) return -1;
    srv_pid = fork();
    if (srv_pid < 0) return -1;
    if (srv_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", "tests/fixtures/http_server.py", srv_root, srv_log,
              "45", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = {0};
    size_t got = 0;
    struct pollfd pf = {fds[0], POLLIN, 0};
    while (got < sizeof buf - 1 && !strchr(buf, '\n') && poll(&pf, 1, 10000) > 0) {
        ssize_t r = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fds[0]);
    if (sscanf(buf, "PORT %d", &srv_port) != 1) return -1;
    return 0;
}

static void stop_server(void) {
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        waitpid(srv_pid, NULL, 0);
        srv_pid = -1;
    }
}

/* A fresh GRAFT_HOME under the temp root; path in home. */
static void fresh_home(char *home, size_t cap, const char *tag) {
    fmt(home, cap, "%s/home-%s", tmp_root, tag);
    mkdir(home, 0755);
    setenv("GRAFT_HOME", home, 1);
}

static void url_of(char *buf, size_t cap, const char *mode, const char *file) {
    fmt(buf, cap, "http://127.0.0.1:%d/%s/%s", srv_port, mode, file);
}

/* ------------------------------------------------------------------ tests */

static void test_digest_vectors(void) {
    char hex[GR_DIGEST_HEX_MAX];
    gr_error err = {0};
    CHECK(gr_digest_buf(GR_DIGEST_SHA256, "abc", 3, hex, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) %s", hex);
    CHECK(gr_digest_buf(GR_DIGEST_MD5, "abc", 3, hex, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(hex, "900150983cd24fb0d6963f7d28e17f72"), "md5(abc) %s", hex);
    CHECK(gr_digest_buf(GR_DIGEST_SHA256, "", 0, hex, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') %s", hex);
    CHECK(gr_digest_buf(GR_DIGEST_MD5, "", 0, hex, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(hex, "d41d8cd98f00b204e9800998ecf8427e"), "md5('') %s", hex);
    /* incremental = one shot: "ab" + "c" */
    gr_digest *d = gr_digest_new(GR_DIGEST_SHA256, &err);
    CHECK(d != NULL, "%s", err.msg);
    if (d) {
        gr_digest_update(d, "ab", 2, &err);
        gr_digest_update(d, "c", 1, &err);
        gr_digest_final(d, hex, &err);
        CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "incremental %s", hex);
    }
    CHECK(gr_digest_kind_of_hex("900150983cd24fb0d6963f7d28e17f72") == GR_DIGEST_MD5, "md5 kind");
    CHECK(gr_digest_kind_of_hex("xyz") == -1, "bad hex");
    CHECK(gr_digest_equal("ABCdef", "abcDEF") && !gr_digest_equal("abc", "abd"), "equal");
}

/* A multi-chunk file (600 kB > the 64 kB read size) against coreutils. */
static void test_digest_file_vs_coreutils(void) {
    char path[300], cmd[400], want[128], got[GR_DIGEST_HEX_MAX];
    gr_error err = {0};
    fmt(path, sizeof path, "%s/www/data.bin", tmp_root);
    fmt(cmd, sizeof cmd, "sha256sum '%s'", path);
    if (run_capture(cmd, want, sizeof want) != 0) SKIP("sha256sum not available");
    CHECK(gr_digest_file(GR_DIGEST_SHA256, path, got, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(got, want), "sha256 %s, coreutils %s", got, want);
    fmt(cmd, sizeof cmd, "md5sum '%s'", path);
    if (run_capture(cmd, want, sizeof want) != 0) SKIP("md5sum not available");
    CHECK(gr_digest_file(GR_DIGEST_MD5, path, got, &err) == GR_OK, "%s", err.msg);
    CHECK(!strcmp(got, want), "md5 %s, coreutils %s", got, want);
    CHECK(gr_digest_file(GR_DIGEST_MD5, "/nonexistent/x.bin", got, &err) == GR_ERR_IO &&
              strstr(err.msg, "/nonexistent/x.bin"), "missing file: %s", err.msg);
}

static void test_download_complete(void) {
    char url[256], dest[300], part[310];
    gr_error err = {0};
    url_of(url, sizeof url, "ok", "data.bin");
    fmt(dest, sizeof dest, "%s/complete.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    CHECK(gr_fetch_url(url, dest, blob_sha, &quiet, &err) == GR_OK, "%s", err.msg);
    CHECK(same_as_blob(dest), "downloaded bytes differ");
    CHECK(!exists(part), ".part left behind");
}

static void test_resume_after_drop(void) {
    char url[256], dest[300], needle[64];
    gr_error err = {0};
    url_of(url, sizeof url, "drop", "data.bin");
    fmt(dest, sizeof dest, "%s/dropped.bin", tmp_root);
    CHECK(gr_fetch_url(url, dest, blob_sha, &quiet, &err) == GR_OK, "%s", err.msg);
    CHECK(same_as_blob(dest), "resumed file differs");
    CHECK(log_count("/drop/data.bin range=-") == 1, "first request should have no Range");
    fmt(needle, sizeof needle, "/drop/data.bin range=bytes=%zu-", blob_n / 2);
    CHECK(log_count(needle) == 1, "second request should ask for '%s'", needle);
}

/* A .part from an earlier run: resumed with Range (206), or restarted when
 * the server ignores Range (200). */
static void test_resume_existing_part(void) {
    char url[256], dest[300], part[310];
    gr_error err = {0};
    fmt(dest, sizeof dest, "%s/resume206.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    CHECK(check_write_file(part, blob, 1000) == 0, "write part");
    url_of(url, sizeof url, "ok", "data.bin");
    int before = log_count("/ok/data.bin range=bytes=1000-");
    CHECK(gr_fetch_url(url, dest, blob_sha, &quiet, &err) == GR_OK, "%s", err.msg);
    CHECK(same_as_blob(dest), "206-resumed file differs");
    CHECK(log_count("/ok/data.bin range=bytes=1000-") == before + 1, "no Range request");

    fmt(dest, sizeof dest, "%s/resume200.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    CHECK(check_write_file(part, "garbage that must not stay", 26) == 0, "write part");
    url_of(url, sizeof url, "norange", "data.bin");
    CHECK(gr_fetch_url(url, dest, blob_sha, &quiet, &err) == GR_OK, "%s", err.msg);
    CHECK(same_as_blob(dest), "restarted file differs (server ignored Range)");
    CHECK(log_count("/norange/data.bin range=bytes=26-") == 1, "should have asked to resume");
    CHECK(!exists(part), ".part left behind");
}

/* A .part as long as the file: the server answers 416; start over. */
static void test_resume_complete_part_416(void) {
    char url[256], dest[300], part[310];
    gr_error err = {0};
    fmt(dest, sizeof dest, "%s/resume416.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    CHECK(check_write_file(part, blob, blob_n) == 0, "write part");
    url_of(url, sizeof url, "ok", "data.bin");
    CHECK(gr_fetch_url(url, dest, blob_sha, &quiet, &err) == GR_OK, "%s", err.msg);
    CHECK(same_as_blob(dest), "file differs after a 416");
    char needle[64];
    fmt(needle, sizeof needle, "/ok/data.bin range=bytes=%zu-", blob_n);
    CHECK(log_count(needle) == 1, "expected one request for '%s'", needle);
}

static void test_digest_mismatch(void) {
    char url[256], dest[300], part[310];
    gr_error err = {0};
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    url_of(url, sizeof url, "ok", "data.bin");
    fmt(dest, sizeof dest, "%s/mismatch.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    gr_status st = gr_fetch_url(url, dest, wrong, &quiet, &err);
    CHECK(st == GR_ERR_DIGEST, "status %d: %s", st, err.msg);
    CHECK(strstr(err.msg, url) && strstr(err.msg, wrong) && strstr(err.msg, blob_sha),
          "message should name url, expected and got: %s", err.msg);
    CHECK(!exists(dest) && !exists(part), "no file and no .part may remain");
}

static void test_http_404(void) {
    char url[256], dest[300], part[310];
    gr_error err = {0};
    url_of(url, sizeof url, "ok", "missing.bin");
    fmt(dest, sizeof dest, "%s/missing.bin", tmp_root);
    fmt(part, sizeof part, "%s.part", dest);
    gr_status st = gr_fetch_url(url, dest, NULL, &quiet, &err);
    CHECK(st == GR_ERR_NET, "status %d", st);
    CHECK(strstr(err.msg, url) && strstr(err.msg, "404"), "message: %s", err.msg);
    CHECK(!exists(dest) && !exists(part), "no file may remain");
}

static void test_connection_refused(void) {
    char dest[300];
    gr_error err = {0};
    fmt(dest, sizeof dest, "%s/refused.bin", tmp_root);
    /* port 1 on loopback: nothing listens there */
    gr_status st = gr_fetch_url("http://127.0.0.1:1/x.bin", dest, NULL, &quiet, &err);
    CHECK(st == GR_ERR_NET && strstr(err.msg, "http://127.0.0.1:1/x.bin"), "status %d: %s", st, err.msg);
    CHECK(!exists(dest), "no file may remain");
}

static void test_timeout(void) {
    char url[256], dest[300];
    gr_error err = {0};
    setenv("GRAFT_FETCH_TIMEOUT", "2", 1);
    url_of(url, sizeof url, "hang", "data.bin");
    fmt(dest, sizeof dest, "%s/hang.bin", tmp_root);
    double t0 = now_s();
    gr_status st = gr_fetch_url(url, dest, NULL, &quiet, &err);
    double dt = now_s() - t0;
    unsetenv("GRAFT_FETCH_TIMEOUT");
    CHECK(st == GR_ERR_NET, "status %d: %s", st, err.msg);
    CHECK(strstr(err.msg, "timed out") && strstr(err.msg, url), "message: %s", err.msg);
    CHECK(dt >= 1.5 && dt < 8.0, "took %.1f s with a 2 s timeout", dt);
    CHECK(!exists(dest), "no file may remain");
}

/* Known names through GRAFT_FETCH_BASE_URL: tiny-darknet has no published
 * digest (accepted), vgg16's publisher md5 cannot match a fake file. */
static void test_known_names_from_server(void) {
    char home[300], base[128], p[600], path[600];
    gr_error err = {0};
    fresh_home(home, sizeof home, "names");
    fmt(base, sizeof base, "http://127.0.0.1:%d/ok", srv_port);
    setenv("GRAFT_FETCH_BASE_URL", base, 1);
    const char *files[] = {"tiny.weights", "tiny.cfg", "imagenet.shortnames.list"};
    for (int i = 0; i < 3; i++) {
        fmt(p, sizeof p, "%s/%s", srv_root, files[i]);
        check_write_file(p, files[i], strlen(files[i]));
    }
    CHECK(gr_fetch_name("tiny-darknet", &quiet, &err) == GR_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        fmt(p, sizeof p, "%s/weights/darknet-tiny/%s", home, files[i]);
        size_t n;
        unsigned char *b = check_read_file(p, &n);
        CHECK(b && n == strlen(files[i]) && !memcmp(b, files[i], n), "%s not cached", p);
        free(b);
    }
    int before = log_count("/ok/tiny");
    CHECK(gr_fetch_resolve("tiny-darknet", "cfg", &quiet, path, sizeof path, &err) == GR_OK, "%s", err.msg);
    fmt(p, sizeof p, "%s/weights/darknet-tiny/tiny.cfg", home);
    CHECK(!strcmp(path, p), "resolve cfg: %s", path);
    CHECK(gr_fetch_resolve("tiny-darknet", "labels", &quiet, path, sizeof path, &err) == GR_OK &&
              strstr(path, "imagenet.shortnames.list"), "resolve labels: %s", path);
    CHECK(log_count("/ok/tiny") == before, "cached files were downloaded again");

    fmt(p, sizeof p, "%s/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", srv_root);
    check_write_file(p, "not the real weights", 20);
    gr_status st = gr_fetch_name("vgg16", &quiet, &err);
    CHECK(st == GR_ERR_DIGEST, "status %d: %s", st, err.msg);
    CHECK(strstr(err.msg, "6d6bbae143d832006294945121d1f1fc") && strstr(err.msg, base),
          "message should name the URL and the published md5: %s", err.msg);
    fmt(p, sizeof p, "%s/weights/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", home);
    CHECK(!exists(p), "a mismatching file was kept");
    CHECK(gr_fetch_resolve("resnet50", NULL, &quiet, path, sizeof path, &err) == GR_ERR_NET &&
              strstr(err.msg, "404") && strstr(err.msg, "--mirror"),
          "missing file should say 404 and suggest a mirror: %s", err.msg);
    CHECK(gr_fetch_name("vgg17", &quiet, &err) == GR_ERR_ARG && strstr(err.msg, "vgg16"),
          "unknown name: %s", err.msg);
    unsetenv("GRAFT_FETCH_BASE_URL");
}

static void test_offline_message(void) {
    char home[300], path[600];
    gr_error err = {0};
    fresh_home(home, sizeof home, "offline");
    gr_fetch_opts o = quiet;
    o.offline = true;
    gr_status st = gr_fetch_resolve("vgg16", NULL, &o, path, sizeof path, &err);
    CHECK(st == GR_ERR_NET, "status %d", st);
    CHECK(strstr(err.msg, "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                          "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") &&
              strstr(err.msg, home) && strstr(err.msg, "--mirror"),
          "offline message should say what, from where, to where: %s", err.msg);
}

/* A mirror: files checked against its SHA256SUMS instead of the publisher's md5. */
static void test_mirror(void) {
    char home[300], mir[300], p[700], sums[1024], hex[GR_DIGEST_HEX_MAX], path[700];
    gr_error err = {0};
    fresh_home(home, sizeof home, "mirror");
    fmt(mir, sizeof mir, "%s/mirror", tmp_root);
    mkdir(mir, 0755);
    const char *name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
    fmt(p, sizeof p, "%s/%s", mir, name);
    check_write_file(p, blob, 5000);
    gr_digest_buf(GR_DIGEST_SHA256, blob, 5000, hex, &err);
    fmt(sums, sizeof sums, "%s  ./%s\n", hex, name);
    fmt(p, sizeof p, "%s/SHA256SUMS", mir);
    check_write_file(p, sums, strlen(sums));
    setenv("GRAFT_OFFLINE", "1", 1);   /* a mirror hit must not need the network */
    gr_fetch_opts o = quiet;
    o.mirror = mir;
    CHECK(gr_fetch_resolve("vgg16", NULL, &o, path, sizeof path, &err) == GR_OK, "%s", err.msg);
    size_t n;
    unsigned char *b = check_read_file(path, &n);
    CHECK(b && n == 5000 && !memcmp(b, blob, 5000), "mirror copy differs: %s", path);
    free(b);

    /* the cache's own layout in the mirror (DIR/weights/vgg16/<file>) */
    unlink(path);
    fmt(p, sizeof p, "%s/weights", mir);
    mkdir(p, 0755);
    fmt(p, sizeof p, "%s/weights/vgg16", mir);
    mkdir(p, 0755);
    char from[700], to[700];
    fmt(from, sizeof from, "%s/%s", mir, name);
    fmt(to, sizeof to, "%s/weights/vgg16/%s", mir, name);
    CHECK(rename(from, to) == 0, "rename");
    fmt(sums, sizeof sums, "%s  weights/vgg16/%s\n", hex, name);
    fmt(p, sizeof p, "%s/SHA256SUMS", mir);
    check_write_file(p, sums, strlen(sums));
    CHECK(gr_fetch_resolve("vgg16", NULL, &o, path, sizeof path, &err) == GR_OK, "layout: %s", err.msg);
    b = check_read_file(path, &n);
    CHECK(b && n == 5000 && !memcmp(b, blob, 5000), "mirror copy (layout) differs: %s", path);
    free(b);
    CHECK(rename(to, from) == 0, "rename back");

    /* wrong digest in SHA256SUMS: error naming the mirror file, nothing cached */
    unlink(path);
    fmt(sums, sizeof sums, "%064d  ./%s\n", 1, name);
    fmt(p, sizeof p, "%s/SHA256SUMS", mir);
    check_write_file(p, sums, strlen(sums));
    gr_status st = gr_fetch_name("vgg16", &o, &err);
    fmt(p, sizeof p, "%s/%s", mir, name);
    CHECK(st == GR_ERR_DIGEST && strstr(err.msg, p) && strstr(err.msg, "SHA256SUMS"),
          "status %d: %s", st, err.msg);
    CHECK(!exists(path), "a mismatching mirror file was cached");
    unsetenv("GRAFT_OFFLINE");
}

/* A mirror holding the unpacked dataset directory (like ../shared/data). */
static void test_mirror_dataset_dir(void) {
    char home[300], mir[300], d[400], p[700], sums[4096] = "", hex[GR_DIGEST_HEX_MAX], path[700];
    gr_error err = {0};
    fresh_home(home, sizeof home, "mirror-dir");
    fmt(mir, sizeof mir, "%s/mirror-dir", tmp_root);
    mkdir(mir, 0755);
    fmt(d, sizeof d, "%s/cifar-10-batches-bin", mir);
    mkdir(d, 0755);
    const char *files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                           "batches.meta.txt"};
    for (int i = 0; i < 7; i++) {
        fmt(p, sizeof p, "%s/%s", d, files[i]);
        check_write_file(p, blob + i * 100, 3073);
        gr_digest_buf(GR_DIGEST_SHA256, blob + i * 100, 3073, hex, &err);
        size_t len = strlen(sums);
        fmt(sums + len, sizeof sums - len, "%s  ./cifar-10-batches-bin/%s\n", hex, files[i]);
    }
    fmt(p, sizeof p, "%s/SHA256SUMS", mir);
    check_write_file(p, sums, strlen(sums));
    setenv("GRAFT_OFFLINE", "1", 1);
    gr_fetch_opts o = quiet;
    o.mirror = mir;
    CHECK(gr_fetch_resolve("cifar10", NULL, &o, path, sizeof path, &err) == GR_OK, "%s", err.msg);
    fmt(p, sizeof p, "%s/datasets/cifar10/cifar-10-batches-bin", home);
    CHECK(!strcmp(path, p), "resolved %s", path);
    fmt(p, sizeof p, "%s/datasets/cifar10/cifar-10-batches-bin/test_batch.bin", home);
    CHECK(exists(p), "%s missing", p);

    /* a corrupted file in the mirror: sha256 mismatch names it */
    fmt(p, sizeof p, "%s/datasets/cifar10/cifar-10-batches-bin", home);
    unlink(p);
    fmt(p, sizeof p, "%s/test_batch.bin", d);
    check_write_file(p, blob, 3073);
    gr_status st = gr_fetch_name("cifar10", &o, &err);
    CHECK(st == GR_ERR_DIGEST && strstr(err.msg, p), "status %d: %s", st, err.msg);
    unsetenv("GRAFT_OFFLINE");
}

/* The real shared data as a mirror (tiny-darknet, checked by its SHA256SUMS). */
static void test_mirror_shared_data(void) {
    char home[300], sums[600], path[700];
    gr_error err = {0};
    fmt(sums, sizeof sums, "%s/SHA256SUMS", check_data_dir());
    if (!exists(sums)) SKIP("no shared data at %s (set GRAFT_DATA)", check_data_dir());
    fresh_home(home, sizeof home, "shared");
    gr_fetch_opts o = quiet;
    o.mirror = check_data_dir();
    setenv("GRAFT_OFFLINE", "1", 1);
    CHECK(gr_fetch_resolve("tiny-darknet", "weights", &o, path, sizeof path, &err) == GR_OK, "%s", err.msg);
    char hex[GR_DIGEST_HEX_MAX];
    CHECK(gr_digest_file(GR_DIGEST_SHA256, path, hex, &err) == GR_OK &&
              !strcmp(hex, "e8c1d2c5c0c162a75503cf61b41f9607566efd7848307787f63ba7efcb1815d2"),
          "tiny.weights sha256 %s", hex);
    CHECK(gr_fetch_resolve("tiny-darknet", "labels", &o, path, sizeof path, &err) == GR_OK &&
              strstr(path, "imagenet.shortnames.list"), "%s %s", path, err.msg);
    unsetenv("GRAFT_OFFLINE");
}

int main(void) {
    if (check_mkdtemp(tmp_root, sizeof tmp_root, "fetch")) return 1;
    unsetenv("GRAFT_MIRROR");
    unsetenv("GRAFT_FETCH_BASE_URL");
    unsetenv("GRAFT_OFFLINE");
    setenv("GRAFT_FETCH_RETRIES", "3", 1);
    RUN(test_digest_vectors);
    int have_server = start_server() == 0;
    blob = malloc(blob_n);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < blob_n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        blob[i] = (unsigned char)(s >> 24);
    }
    char p[400];
    fmt(p, sizeof p, "%s/www/data.bin", tmp_root);
    check_write_file(p, blob, blob_n);
    gr_digest_buf(GR_DIGEST_SHA256, blob, blob_n, blob_sha, NULL);
    RUN(test_digest_file_vs_coreutils);
    if (!have_server) {
        printf("FAIL test_server_start: tests/fixtures/http_server.py did not start\n");
        check_total_fail_++;
    } else {
        RUN(test_download_complete);
        RUN(test_resume_after_drop);
        RUN(test_resume_existing_part);
        RUN(test_resume_complete_part_416);
        RUN(test_digest_mismatch);
        RUN(test_http_404);
        RUN(test_connection_refused);
        RUN(test_timeout);
        RUN(test_known_names_from_server);
    }
    RUN(test_offline_message);
    RUN(test_mirror);
    RUN(test_mirror_dataset_dir);
    RUN(test_mirror_shared_data);
    stop_server();
    free(blob);
    check_rmtree(tmp_root);
    return check_summary();
}
