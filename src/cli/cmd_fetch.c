/* cmd_fetch.c — `graft fetch [--mirror DIR] [--force] [--quiet] [--list] NAME...` */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "hub/fetch.h"

typedef struct {
    const char *mirror;
    int force, offline, quiet, json, list;
    const char **names;      /* the NAME arguments (argc entries allocated) */
    int n_names;
} fetch_args;

static int add_name(void *obj, const char *arg) {
    fetch_args *a = obj;
    if (arg[0] == '-') return cli_usage("fetch: options go before the names ('%s')", arg);
    a->names[a->n_names++] = arg;
    return 0;
}

#define T fetch_args
static const cli_opt fetch_opts[] = {
    OPT_STR("--mirror", mirror, "DIR", NULL,
            "look in DIR first (also $GRAFT_MIRROR): files by name or in the\n"
            "cache's layout (weights/..., datasets/...); an unpacked dataset\n"
            "directory (cifar-10-batches-bin) is linked.  Files listed in\n"
            "DIR/SHA256SUMS are checked against it."),
    OPT_FLAG("--force", force, 1, "fetch again even when cached"),
    OPT_FLAG("--offline", offline, 1, "never use the network (also GRAFT_OFFLINE=1)"),
    OPT_JSON_QUIET(json, "one JSON object per name on stdout: {\"name\", \"path\"} (implies --quiet)", quiet,
                   "no progress or notes"),
    OPT_FLAG("--list", list, 1, "known names, their URLs and whether they are cached"),
    OPT_END};
#undef T

static const cli_cmd fetch_cmd = {
    .name = "fetch",
    .intro = "usage: graft fetch [--mirror DIR] [--force] [--offline] [--quiet] [--json] NAME...\n"
             "       graft fetch --list\n\n"
             "Downloads pretrained weights and datasets into the cache ($GRAFT_HOME,\n"
             "default ~/.cache/graft), checks them against the publisher's digest and\n"
             "keeps them; a file already cached and verified is not downloaded again.\n\n"
             "options:\n",
    .opts = fetch_opts,
    .outro = "\nenvironment: GRAFT_FETCH_TIMEOUT (seconds without data before giving up, default 30),\n"
             "GRAFT_FETCH_RETRIES (resumes after a dropped connection, default 3),\n"
             "GRAFT_FETCH_BASE_URL (fetch every file from BASE/<file name>)\n"
             "exit status: 0 fetched, 1 a download or digest failed, 2 a usage error\n",
    .operand = add_name,
    .operands_last = 1};

static int list_known(void) {
    char home[4096], url[4096], p[8192];
    gr_error err = {0};
    if (gr_fetch_home(home, sizeof home, &err)) return cli_fail(&err);
    int n;
    const gr_fetch_entry *r = gr_fetch_registry(&n);
    printf("cache: %s\n\n", home);
    for (int i = 0; i < n; i++) {
        printf("%-13s %s\n", r[i].name, r[i].what);
        struct stat st;
        if (r[i].unpacked) {
            snprintf(p, sizeof p, "%s/%s/%s", home, r[i].subdir, r[i].unpacked);
            if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) printf("    %-9s %s\n", "cached", p);
        }
        for (int j = 0; j < r[i].n_files; j++) {
            const gr_fetch_file *f = &r[i].files[j];
            gr_fetch_file_url(f, url, sizeof url);
            snprintf(p, sizeof p, "%s/%s/%s", home, r[i].subdir, f->file);
            bool have = stat(p, &st) == 0 && S_ISREG(st.st_mode);
            printf("    %-9s %s\n", have ? "cached" : "missing", have ? p : f->file);
            printf("    %-9s %s\n", "url", url);
            if (f->digest)
                printf("    %-9s %s\n", strlen(f->digest) == 32 ? "md5" : "sha256", f->digest);
            else
                printf("    %-9s none published\n", "digest");
        }
    }
    return 0;
}

/* Fetches each name (--json: prints where it is): the exit code. */
static int fetch_names(const fetch_args *a, const gr_fetch_opts *o) {
    for (int i = 0; i < a->n_names; i++) {
        gr_error err = {0};
        const char *name = a->names[i];
        if (gr_fetch_name(name, o, &err)) return cli_fail(&err);
        if (a->json) {
            char path[4096];
            if (gr_fetch_resolve(name, NULL, o, path, sizeof path, &err)) return cli_fail(&err);
            printf("{\"name\": ");
            cli_json_string(name);
            printf(", \"path\": ");
            cli_json_string(path);
            printf("}\n");
        }
    }
    return 0;
}

int cmd_fetch(int argc, char **argv) {
    fetch_args a = {.names = calloc((size_t)argc, sizeof(const char *))};
    if (!a.names) return cli_failf("out of memory");
    int rc = cli_parse(&fetch_cmd, argc, argv, &a);
    if (rc == CLI_HELP) rc = 0;
    else if (!rc && a.list) rc = list_known();
    else if (!rc && !a.n_names) {
        cli_help(&fetch_cmd, stderr);
        rc = cli_usage("fetch: name what to fetch (graft fetch --list shows the names)");
    } else if (!rc) {
        gr_fetch_opts o = {.mirror = a.mirror, .force = a.force, .offline = a.offline, .quiet = a.quiet || a.json};
        rc = fetch_names(&a, &o);
    }
    free(a.names);
    return rc;
}
