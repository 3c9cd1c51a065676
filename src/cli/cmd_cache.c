/* cmd_cache.c — `graft cache list|clear [--json]`: the features cache on
 * disk ($GRAFT_HOME/cache/features): its entries, their sizes and last use,
 * the limit (GRAFT_CACHE_MAX) and the total; clear removes the entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "train/train.h"

static void time_text(int64_t s, char *out, size_t cap) {
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(out, cap, "?");
}

static int list(const char *dir, bool json, bool off, uint64_t limit) {
    gr_fc_file *v;
    int n;
    gr_error err = {0};
    if (gr_features_cache_scan(dir, &v, &n, &err) != GR_OK) return cli_fail(&err);
    uint64_t total = 0, temp = 0;
    int entries = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].kind == GR_FC_ENTRY) { total += v[i].bytes; entries++; }
        else temp += v[i].bytes;
    }
    char when[32], size[32], lim[32];
    gr_size_text(limit, lim, sizeof lim);
    if (json) {
        printf("{\"dir\": ");
        cli_json_string(dir);
        printf(", \"enabled\": %s, \"limit_bytes\": %llu, \"total_bytes\": %llu, \"count\": %d, \"entries\": [",
               off ? "false" : "true", (unsigned long long)limit, (unsigned long long)total, entries);
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (v[i].kind != GR_FC_ENTRY) continue;
            time_text(v[i].used_s, when, sizeof when);
            printf("%s{\"key\": \"%.64s\", \"bytes\": %llu, \"last_used\": \"%s\", \"last_used_unix\": %lld, "
                   "\"images\": %llu, \"features\": %llu}", k++ ? ", " : "", v[i].name, (unsigned long long)v[i].bytes,
                   when, (long long)v[i].used_s, (unsigned long long)v[i].n, (unsigned long long)v[i].F);
        }
        printf("], \"temporary_bytes\": %llu}\n", (unsigned long long)temp);
        free(v);
        return 0;
    }
    printf("features cache: %s%s\n", dir, off ? "  (off: GRAFT_FEATURES_CACHE=0)" : "");
    if (entries) printf("%-20s  %10s  %-22s  %s\n", "last used (UTC)", "size", "images x features", "key");
    for (int i = 0; i < n; i++) {
        if (v[i].kind != GR_FC_ENTRY) continue;
        time_text(v[i].used_s, when, sizeof when);
        gr_size_text(v[i].bytes, size, sizeof size);
        char shape[48];
        if (v[i].n) snprintf(shape, sizeof shape, "%llu x %llu", (unsigned long long)v[i].n, (unsigned long long)v[i].F);
        else snprintf(shape, sizeof shape, "(unreadable header)");
        printf("%-20s  %10s  %-22s  %.64s\n", when, size, shape, v[i].name);
    }
    gr_size_text(total, size, sizeof size);
    printf("%d entr%s, %s; limit %s\n", entries, entries == 1 ? "y" : "ies", size,
           limit ? lim : "none (GRAFT_CACHE_MAX=0)");
    if (temp) {
        gr_size_text(temp, size, sizeof size);
        printf("temporary files (runs writing, or killed): %s\n", size);
    }
    free(v);
    return 0;
}

static int clear(const char *dir, bool json) {
    int removed = 0;
    uint64_t freed = 0;
    gr_error err = {0};
    gr_status st = gr_features_cache_evict(dir, 0, true, NULL, &removed, &freed, &err);
    if (json) {
        printf("{\"dir\": ");
        cli_json_string(dir);
        printf(", \"removed\": %d, \"freed_bytes\": %llu}\n", removed, (unsigned long long)freed);
    } else {
        char size[32];
        gr_size_text(freed, size, sizeof size);
        printf("removed %d entr%s (%s) from %s\n", removed, removed == 1 ? "y" : "ies", size, dir);
    }
    return st == GR_OK ? 0 : cli_fail(&err);
}

typedef struct {
    const char *action;   /* list or clear */
    int json;
} cache_args;

static int set_action(void *obj, const char *arg) {
    cache_args *a = obj;
    if (a->action) return cli_usage("cache: one action, list or clear (got '%s' and '%s')", a->action, arg);
    if (strcmp(arg, "list") && strcmp(arg, "clear"))
        return cli_usage("cache: unknown action '%s': expected list or clear (see graft cache --help)", arg);
    a->action = arg;
    return 0;
}

#define T cache_args
static const cli_opt cache_opts[] = {
    OPT_FLAG("--json", json, 1, "one JSON object on stdout"),
    OPT_END};
#undef T
static const cli_cmd cache_cmd = {
    .name = "cache",
    .intro = "usage: graft cache list [--json]\n"
             "       graft cache clear [--json]\n"
             "\n"
             "The features cache: the frozen base's outputs for a training set, kept so that\n"
             "a second run on the same base, weights, cut, input size, preprocessing and\n"
             "images skips the base (README \"The features cache\").  It lives in\n"
             "$GRAFT_HOME/cache/features (default ~/.cache/graft/cache/features).\n"
             "\n"
             "  list      each entry: its last use (written or read), size, images x features\n"
             "            per image and key, most recent first; then the total and the limit\n"
             "  clear     removes every entry (and temporary files left by killed runs)\n",
    .opts = cache_opts,
    .outro = "environment: GRAFT_CACHE_MAX  the cache's size limit: bytes, or a number with K, M,\n"
             "             G or T (powers of 1024), e.g. 2G or 500M  [10G]; 0 = no limit.  Storing\n"
             "             an entry first removes the least recently used ones until it fits.\n"
             "             GRAFT_FEATURES_CACHE=0 turns the cache off.  Entries hold float16\n"
             "             features; GRAFT_FEATURES_PRECISION=fp32 keeps float32 ones.\n",
    .operand = set_action};

int cmd_cache(int argc, char **argv) {
    cache_args a = {0};
    int rc = cli_parse(&cache_cmd, argc, argv, &a);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!a.action) {
        cli_help(&cache_cmd, stderr);
        return cli_usage("cache: name an action, list or clear");
    }
    const char *action = a.action;
    bool json = a.json;
    char dir[4096];
    if (gr_features_cache_path(dir, sizeof dir))
        return cli_failf("cache: no cache directory: set GRAFT_HOME or HOME");
    size_t dl = strlen(dir);
    if (dl > 1 && dir[dl - 1] == '/') dir[dl - 1] = 0;   /* for messages */
    if (!strcmp(action, "clear")) return clear(dir, json);
    const char *off = getenv("GRAFT_FEATURES_CACHE");
    uint64_t limit;
    gr_error err = {0};
    if (gr_features_cache_limit(&limit, &err) != GR_OK) return cli_fail(&err);
    return list(dir, json, off && !strcmp(off, "0"), limit);
}
