/* opts.h — table-driven options.  Each command describes its options in one
 * table (name, value kind, default, help text, the field it sets); the same
 * table parses the command line and prints --help, from which scripts/man.sh
 * makes the man page (help2man) and the bash completion reads the options.
 * And one name table per enum: parsed and printed by one function each. */
#ifndef GRAFT_CLI_OPTS_H
#define GRAFT_CLI_OPTS_H
#include <stddef.h>
#include <stdio.h>

/* Prints "graft: error: <msg>" for a usage error (bad options); returns 2 (graft.c). */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses an int / a float option value; -1 when malformed (common.c). */
int cli_parse_int(const char *s, int *out);
int cli_parse_float(const char *s, float *out);

/* ---- enum names ----
 * An enum is a function giving the name of value k = 0, 1, ... and NULL
 * after the last.  Where the library names an enum (gr_resize_mode_name,
 * gr_interp_name, gr_preprocess_name) the function reads the library's.  */
typedef const char *(*cli_names)(int k);
int cli_enum_parse(cli_names names, const char *s);   /* k, or -1 when s is not a name */
const char *cli_enum_name(cli_names names, int k);    /* "?" out of range */
/* The names joined: "a|b|c" (sep = last = "|") or "a, b or c" (", ", " or "). */
char *cli_enum_list(cli_names names, const char *sep, const char *last, char *buf, size_t cap);

const char *cli_optimizer_names(int k);    /* gr_optim_kind: sgd, adam, adamw */
const char *cli_schedule_names(int k);     /* gr_schedule: constant, inverse-time, step, cosine */
const char *cli_format_names(int k);       /* gr_data_format: auto, cifar10, cifar100, folder, csv */
const char *cli_labels_names(int k);       /* gr_label_kind: fine, coarse */
const char *cli_split_names(int k);        /* gr_split: train, test */
const char *cli_precision_names(int k);    /* gr_precision: fp32, bf16 */
const char *cli_resize_names(int k);       /* gr_resize_mode (the library's names) */
const char *cli_interp_names(int k);       /* gr_interp (the library's names) */
const char *cli_preprocess_names(int k);   /* gr_preprocess (the library's names) */
const char *cli_loss_names(int k);         /* train --loss: categorical, sparse */
const char *cli_monitor_names(int k);      /* train --monitor: val_accuracy, val_loss */
const char *cli_keep_names(int k);         /* train --keep: best, last */
const char *cli_tta_names(int k);          /* train/eval --tta: none, flip */
enum { CLI_LOSS_CATEGORICAL, CLI_LOSS_SPARSE };
enum { CLI_MONITOR_ACCURACY, CLI_MONITOR_LOSS };
enum { CLI_KEEP_BEST, CLI_KEEP_LAST };

/* ---- option tables ---- */
typedef enum {
    CLI_END = 0,   /* ends a table */
    CLI_FLAG,      /* no value: the int field = val */
    CLI_STR,       /* const char * field = the value */
    CLI_ENUM,      /* const char * field = the value, one of names (checked) */
    CLI_INT,       /* int field, >= val ("a positive integer" for 1) */
    CLI_U64,       /* unsigned long long field, a non-negative integer */
    CLI_FLOAT,     /* float field, a finite non-negative number */
    CLI_FUNC,      /* set(obj, value): 0 ok, -1 a bad value ("expected <expect>"), else the exit code */
    CLI_GROUP,     /* the options of table sub, on the struct at offset off (cli_data_opts) */
    CLI_HEAD,      /* --help only: a heading line (help) */
    CLI_NOTE       /* --help only: lines printed as they are (help) */
} cli_kind;

typedef struct cli_opt {
    cli_kind kind;
    const char *name;        /* "--epochs" */
    const char *alias;       /* "-q", or NULL */
    size_t off;              /* offsetof the field it sets in the command's struct */
    int val;                 /* CLI_FLAG: the value stored; CLI_INT: the least value */
    const char *meta;        /* the value in --help ("N", "FILE"); CLI_ENUM: NULL = its names */
    const char *def;         /* the default, as --help shows it, or NULL */
    const char *help;        /* the help text; '\n' starts a line under the previous one */
    cli_names names;         /* CLI_ENUM */
    const char *expect;      /* what a bad value should have been ("HxW, e.g. 64x64"), or NULL */
    int (*set)(void *obj, const char *v);    /* CLI_FUNC: obj = the command's struct */
    const struct cli_opt *sub;               /* CLI_GROUP */
    size_t given;            /* when not 0: offsetof + 1 of an int set to 1 when the option is given */
    const char *cfg;         /* train: the option's key in a checkpoint's settings, or NULL */
} cli_opt;

/* A command: its option table with the text --help prints around it. */
typedef struct {
    const char *name;        /* "train" */
    const char *intro;       /* usage lines and description: before the options */
    const cli_opt *opts;
    const char *outro;       /* after the options, or NULL */
    /* an argument that is not an option (NULL: refused); 0 ok, else the exit code */
    int (*operand)(void *obj, const char *arg);
    int operands_last;       /* after the first operand every argument is one (fetch NAME...) */
} cli_cmd;

/* Returned by cli_parse after --help / -h printed the help (exit 0). */
#define CLI_HELP (-1)
/* Parses argv[1..argc) into obj by cmd's table: 0 ok, CLI_HELP, or 2 after
 * printing the usage error (an unknown option, a missing or bad value).
 * "--name=value" is "--name value"; "--" ends the options.               */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *obj);
/* Prints cmd's --help. */
void cli_help(const cli_cmd *cmd, FILE *f);
/* Prints the help lines of one table (a CLI_GROUP's). */
void cli_help_table(const cli_opt *opts, FILE *f);
/* The option named name (or by its alias) in opts and its groups; *base: the
 * offset of the struct it sets (a group's).  NULL when none.              */
const cli_opt *cli_find_opt(const cli_opt *opts, const char *name, size_t *base);
/* The option whose checkpoint key is key (its cfg), as cli_find_opt. */
const cli_opt *cli_find_cfg(const cli_opt *opts, const char *key, size_t *base);
/* Sets o's field in obj from the text v as the command line would (o takes
 * a value): 0 ok, else 2 after printing the usage error.                 */
int cli_set_opt(const cli_opt *o, void *obj, const char *v);

/* Table-entry shorthands; T is the command's struct (#define T ...). */
#define OPT_FLAG(nm, fld, v, hlp) {.kind = CLI_FLAG, .name = nm, .off = offsetof(T, fld), .val = v, .help = hlp}
#define OPT_STR(nm, fld, mt, df, hlp) \
    {.kind = CLI_STR, .name = nm, .off = offsetof(T, fld), .meta = mt, .def = df, .help = hlp}
#define OPT_ENUM(nm, fld, nms, df, hlp) \
    {.kind = CLI_ENUM, .name = nm, .off = offsetof(T, fld), .names = nms, .def = df, .help = hlp}
#define OPT_INT(nm, fld, min, df, hlp) \
    {.kind = CLI_INT, .name = nm, .off = offsetof(T, fld), .val = min, .meta = "N", .def = df, .help = hlp}
#define OPT_FLOAT(nm, fld, df, hlp) \
    {.kind = CLI_FLOAT, .name = nm, .off = offsetof(T, fld), .meta = "F", .def = df, .help = hlp}
#define OPT_U64(nm, fld, df, hlp) \
    {.kind = CLI_U64, .name = nm, .off = offsetof(T, fld), .meta = "N", .def = df, .help = hlp}
#define OPT_FUNC(nm, fn, mt, exp, df, hlp) \
    {.kind = CLI_FUNC, .name = nm, .set = fn, .meta = mt, .expect = exp, .def = df, .help = hlp}
#define OPT_GROUP(fld, tbl) {.kind = CLI_GROUP, .off = offsetof(T, fld), .sub = tbl}
#define OPT_HEAD(text) {.kind = CLI_HEAD, .help = text}
/* The compute-thread count every command takes (0 = the cores). */
#define OPT_THREADS(fld) OPT_INT("--threads", fld, 0, "cores", "compute threads")
#define OPT_NOTE(text) {.kind = CLI_NOTE, .help = text}
#define OPT_JSON_QUIET(json_fld, json_help, quiet_fld, quiet_help) \
    OPT_FLAG("--json", json_fld, 1, json_help), \
    {.kind = CLI_FLAG, .name = "--quiet", .alias = "-q", .off = offsetof(T, quiet_fld), .val = 1, .help = quiet_help}
#define OPT_END {.kind = CLI_END}

#endif
