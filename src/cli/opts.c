/* opts.c — the option tables' parser and --help printer, and the enums'
 * names (see opts.h). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "graft.h"
#include "opts.h"

/* ------------------------------------------------------------ enum names */

int cli_enum_parse(cli_names names, const char *s) {
    const char *n;
    for (int k = 0; (n = names(k)); k++)
        if (!strcmp(s, n)) return k;
    return -1;
}

const char *cli_enum_name(cli_names names, int k) {
    const char *n = k >= 0 ? names(k) : NULL;
    return n ? n : "?";
}

char *cli_enum_list(cli_names names, const char *sep, const char *last, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; names(k) && len < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", k == 0 ? "" : names(k + 1) ? sep : last, names(k));
    return buf;
}

/* A name table: NAMES(fn, "a", "b") defines fn(k) over the list. */
#define NAMES(fn, ...)                                                   \
    const char *fn(int k) {                                              \
        static const char *const v[] = {__VA_ARGS__};                    \
        return k >= 0 && k < (int)(sizeof v / sizeof v[0]) ? v[k] : NULL; \
    }
NAMES(cli_optimizer_names, "sgd", "adam", "adamw")
NAMES(cli_schedule_names, "constant", "inverse-time", "step", "cosine")
NAMES(cli_format_names, "auto", "cifar10", "cifar100", "folder", "csv")
NAMES(cli_labels_names, "fine", "coarse")
NAMES(cli_split_names, "train", "test")
NAMES(cli_precision_names, "fp32", "bf16")
NAMES(cli_loss_names, "categorical", "sparse")
NAMES(cli_monitor_names, "val_accuracy", "val_loss")
NAMES(cli_keep_names, "best", "last")
NAMES(cli_tta_names, "none", "flip")
#undef NAMES

/* The library's names ("?" past the last) as a cli_names. */
static const char *lib_name(const char *s) { return strcmp(s, "?") ? s : NULL; }
const char *cli_resize_names(int k) { return k < 0 ? NULL : lib_name(gr_resize_mode_name((gr_resize_mode)k)); }
const char *cli_interp_names(int k) { return k < 0 ? NULL : lib_name(gr_interp_name((gr_interp)k)); }
const char *cli_preprocess_names(int k) {   /* the presets ("custom" is not one to choose) */
    return k < 0 || k >= GR_PREP_CUSTOM ? NULL : lib_name(gr_preprocess_name((gr_preprocess)k));
}

/* ---------------------------------------------------------------- lookup */

static const cli_opt *find(const cli_opt *opts, const char *name, const char *key, size_t *base) {
    for (const cli_opt *o = opts; o->kind != CLI_END; o++) {
        if (o->kind == CLI_GROUP) {
            size_t b;
            const cli_opt *s = find(o->sub, name, key, &b);
            if (s) { *base = o->off + b; return s; }
            continue;
        }
        if (o->kind == CLI_HEAD || o->kind == CLI_NOTE) continue;
        if ((name && (!strcmp(o->name, name) || (o->alias && !strcmp(o->alias, name)))) ||
            (key && o->cfg && !strcmp(o->cfg, key))) {
            *base = 0;
            return o;
        }
    }
    return NULL;
}

const cli_opt *cli_find_opt(const cli_opt *opts, const char *name, size_t *base) {
    return find(opts, name, NULL, base);
}

const cli_opt *cli_find_cfg(const cli_opt *opts, const char *key, size_t *base) {
    return find(opts, NULL, key, base);
}

/* ---------------------------------------------------------------- values */

static int parse_u64(const char *v, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!*v || *v == '-' || *v == '+' || *v == ' ') return -1;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return -1;
    *out = x;
    return 0;
}

/* "expected ..." for a bad value of o into buf. */
static const char *expectation(const cli_opt *o, char *buf, size_t cap) {
    if (o->expect) return o->expect;
    switch (o->kind) {
    case CLI_ENUM: return cli_enum_list(o->names, ", ", " or ", buf, cap);
    case CLI_INT:
        if (o->val == 1) return "a positive integer";
        if (o->val == 0) return "a non-negative integer";
        snprintf(buf, cap, "an integer >= %d", o->val);
        return buf;
    case CLI_U64: return "a non-negative integer";
    case CLI_FLOAT: return "a non-negative number";
    default: return "a valid value";
    }
}

int cli_set_opt(const cli_opt *o, void *obj, const char *v) {
    void *field = (char *)obj + o->off;
    int bad = 0;
    switch (o->kind) {
    case CLI_STR: *(const char **)field = v; break;
    case CLI_ENUM:
        bad = cli_enum_parse(o->names, v) < 0;
        if (!bad) *(const char **)field = v;
        break;
    case CLI_INT: bad = cli_parse_int(v, field) || *(int *)field < o->val; break;
    case CLI_U64: bad = parse_u64(v, field); break;
    case CLI_FLOAT: bad = cli_parse_float(v, field) || !isfinite(*(float *)field) || *(float *)field < 0; break;
    case CLI_FUNC: {
        int rc = o->set(obj, v);
        if (rc > 0) return rc;
        bad = rc < 0;
        break;
    }
    default: bad = 1;
    }
    if (bad) {
        char buf[256];
        return cli_usage("%s '%s': expected %s", o->name, v, expectation(o, buf, sizeof buf));
    }
    if (o->given) *(int *)((char *)obj + o->given - 1) = 1;
    return 0;
}

/* Takes the option argv[*i] (with its value: *i advances): 0 ok, else the exit code. */
static int take_option(const cli_cmd *cmd, int argc, char **argv, int *i, void *obj) {
    const char *a = argv[*i], *eq = a[1] == '-' ? strchr(a, '=') : NULL;
    char name[64];
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
    size_t base = 0;
    const cli_opt *o = cli_find_opt(cmd->opts, name, &base);
    if (!o) return cli_usage("unknown option '%s' (see graft %s --help)", name, cmd->name);
    void *at = (char *)obj + base;
    if (o->kind == CLI_FLAG) {
        if (eq) return cli_usage("%s takes no value (see graft %s --help)", name, cmd->name);
        *(int *)((char *)at + o->off) = o->val;
        if (o->given) *(int *)((char *)at + o->given - 1) = 1;
        return 0;
    }
    if (!eq && *i + 1 >= argc) return cli_usage("%s needs a value (see graft %s --help)", name, cmd->name);
    return cli_set_opt(o, at, eq ? eq + 1 : argv[++*i]);
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *obj) {
    bool operands = false;   /* after "--" (or the first operand with operands_last) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc;
        if (operands || a[0] != '-' || !a[1]) {
            if (!cmd->operand) return cli_usage("unexpected argument '%s' (see graft %s --help)", a, cmd->name);
            if ((rc = cmd->operand(obj, a))) return rc;
            operands = cmd->operands_last;
            continue;
        }
        if (!strcmp(a, "--")) { operands = true; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_help(cmd, stdout);
            return CLI_HELP;
        }
        if ((rc = take_option(cmd, argc, argv, &i, obj))) return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ help */

enum { HELP_COL = 24 };

static void help_line(const cli_opt *o, FILE *f) {
    char left[512], names[256];
    int n = snprintf(left, sizeof left, "  %s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "", o->name);
    if (o->kind != CLI_FLAG) {
        const char *meta = o->meta ? o->meta : o->kind == CLI_ENUM ? cli_enum_list(o->names, "|", "|", names,
                                                                                    sizeof names) : "VALUE";
        n += snprintf(left + n, sizeof left - (size_t)n, " %s", meta);
    }
    if (o->def && n < (int)sizeof left) n += snprintf(left + n, sizeof left - (size_t)n, " [%s]", o->def);
    const char *h = o->help ? o->help : "";
    size_t first = strcspn(h, "\n");
    if (n < HELP_COL - 1) fprintf(f, "%s%*s", left, HELP_COL - n, "");
    else if (n + 3 + (int)first <= 100) fprintf(f, "%s   ", left);
    else fprintf(f, "%s\n%*s", left, HELP_COL, "");   /* too long for one line: the help below */
    for (;;) {   /* each '\n' starts a line under the help's first */
        const char *e = strchr(h, '\n');
        fprintf(f, "%.*s\n", e ? (int)(e - h) : (int)strlen(h), h);
        if (!e) break;
        h = e + 1;
        fprintf(f, "%*s", HELP_COL, "");
    }
}

void cli_help_table(const cli_opt *opts, FILE *f) {
    for (const cli_opt *o = opts; o->kind != CLI_END; o++) {
        if (o->kind == CLI_GROUP) cli_help_table(o->sub, f);
        else if (o->kind == CLI_HEAD) fprintf(f, "%s\n", o->help);
        else if (o->kind == CLI_NOTE) fputs(o->help, f);
        else help_line(o, f);
    }
}

void cli_help(const cli_cmd *cmd, FILE *f) {
    fputs(cmd->intro, f);
    cli_help_table(cmd->opts, f);
    if (cmd->outro) fputs(cmd->outro, f);
}
