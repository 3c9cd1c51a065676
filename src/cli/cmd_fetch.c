/* cmd_fetch.c — `graft fetch [--mirror DIR] [--force] [--quiet] [--list] NAME...` */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "hub/fetch.h"

static void fetch_usage(FILE *f) {
    fprintf(f,
            "usage: graft fetch [--mirror DIR] [--force] [--offline] [--quiet] [--json] NAME...\n"
            "       graft fetch --list\n\n"
            "Downloads pretrained weights and datasets into the cache ($GRAFT_HOME,\n"
            "default ~/.cache/graft), checks them against the publisher's digest and\n"
            "keeps them; a file already cached and verified is not downloaded again.\n\n"
            "options:\n"
            "  --mirror DIR  look in DIR first (also $GRAFT_MIRROR): files by name or in the\n"
            "                cache's layout (weights/..., datasets/...); an unpacked dataset\n"
            "                directory (cifar-10-batches-bin) is linked.  Files listed in\n"
            "                DIR/SHA256SUMS are checked against it.\n"
            "  --force       fetch again even when cached\n"
            "  --offline     never use the network (also GRAFT_OFFLINE=1)\n"
            "  --quiet       no progress or notes\n"
            "  --json        one JSON object per name on stdout: {\"name\", \"path\"} (implies --quiet)\n"
            "  --list        known names, their URLs and whether they are cached\n\n"
            "environment: GRAFT_FETCH_TIMEOUT (seconds without data before giving up, default 30),\n"
            "GRAFT_FETCH_RETRIES (resumes after a dropped connection, default 3),\n"
            "GRAFT_FETCH_BASE_URL (fetch every file from BASE/<file name>)\n"
            "exit status: 0 fetched, 1 a download or digest failed, 2 a usage error\n");
}

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

int cmd_fetch(int argc, char **argv) {
    gr_fetch_opts o = {0};
    bool list = false, json = false;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fetch_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--mirror")) {
            if (++i >= argc) return cli_usage("--mirror needs a directory");
            o.mirror = argv[i];
        } else if (!strncmp(a, "--mirror=", 9)) {
            o.mirror = a + 9;
        } else if (!strcmp(a, "--force")) {
            o.force = true;
        } else if (!strcmp(a, "--offline")) {
            o.offline = true;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = true;
        } else if (!strcmp(a, "--json")) {
            json = o.quiet = true;
        } else if (!strcmp(a, "--list")) {
            list = true;
        } else if (!strcmp(a, "--")) {
            first = i + 1;
            break;
        } else if (a[0] == '-') {
            fetch_usage(stderr);
            return cli_usage("fetch: unknown option '%s' (see graft fetch --help)", a);
        } else {
            first = i;
            break;
        }
    }
    if (list) return list_known();
    if (first >= argc) {
        fetch_usage(stderr);
        return cli_usage("fetch: name what to fetch (graft fetch --list shows the names)");
    }
    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-') return cli_usage("fetch: options go before the names ('%s')", argv[i]);
    for (int i = first; i < argc; i++) {
        gr_error err = {0};
        if (gr_fetch_name(argv[i], &o, &err)) return cli_fail(&err);
        if (json) {
            char path[4096];
            if (gr_fetch_resolve(argv[i], NULL, &o, path, sizeof path, &err)) return cli_fail(&err);
            printf("{\"name\": ");
            cli_json_string(argv[i]);
            printf(", \"path\": ");
            cli_json_string(path);
            printf("}\n");
        }
    }
    return 0;
}
