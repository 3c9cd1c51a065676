/* test_names.c — the enums' name/parse pairs (gr_*_name, gr_*_parse): every
 * value's name is the documented string (the CLI's option values and the
 * words the files hold), parses back to the value, and an unknown name or
 * an out-of-range value is refused ("?" / -1), never read past a table.   */
#include "check.h"
#include "graft.h"

static void test_schedule_names(void) {
    const char *want[] = {"constant", "inverse-time", "step", "cosine"};
    for (int i = 0; i < 4; i++) {
        gr_schedule s = (gr_schedule)99;
        CHECK(!strcmp(gr_schedule_name((gr_schedule)i), want[i]), "schedule %d named %s", i,
              gr_schedule_name((gr_schedule)i));
        CHECK(gr_schedule_parse(want[i], &s) == 0 && s == (gr_schedule)i, "parse %s gave %d", want[i], (int)s);
    }
    gr_schedule s = GR_SCHEDULE_STEP;
    CHECK(gr_schedule_parse("Cosine", &s) == -1 && s == GR_SCHEDULE_STEP, "parse Cosine accepted");
    CHECK(gr_schedule_parse("", &s) == -1, "parse of the empty name accepted");
    CHECK(!strcmp(gr_schedule_name((gr_schedule)4), "?"), "schedule 4 named %s", gr_schedule_name((gr_schedule)4));
    CHECK(!strcmp(gr_schedule_name((gr_schedule)-1), "?"), "schedule -1 named %s", gr_schedule_name((gr_schedule)-1));
}

static void test_optimizer_names(void) {
    const char *want[] = {"sgd", "adam", "adamw"};
    for (int i = 0; i < 3; i++) {
        gr_optim_kind k = (gr_optim_kind)99;
        CHECK(!strcmp(gr_optim_kind_name((gr_optim_kind)i), want[i]), "optimizer %d named %s", i,
              gr_optim_kind_name((gr_optim_kind)i));
        CHECK(gr_optim_kind_parse(want[i], &k) == 0 && k == (gr_optim_kind)i, "parse %s gave %d", want[i], (int)k);
    }
    gr_optim_kind k;
    CHECK(gr_optim_kind_parse("rmsprop", &k) == -1, "parse rmsprop accepted");
    CHECK(!strcmp(gr_optim_kind_name((gr_optim_kind)3), "?"), "optimizer 3 named %s",
          gr_optim_kind_name((gr_optim_kind)3));
    /* the constructors and the names agree */
    CHECK(!strcmp(gr_optim_kind_name(gr_adamw(0.001f, 0.01f).kind), "adamw"), "gr_adamw is not named adamw");
}

static void test_data_names(void) {
    const char *fmt[] = {"auto", "cifar10", "cifar100", "folder", "csv"};
    for (int i = 0; i < 5; i++) {
        gr_data_format f = (gr_data_format)99;
        CHECK(!strcmp(gr_data_format_name((gr_data_format)i), fmt[i]), "format %d named %s", i,
              gr_data_format_name((gr_data_format)i));
        CHECK(gr_data_format_parse(fmt[i], &f) == 0 && f == (gr_data_format)i, "parse %s gave %d", fmt[i], (int)f);
    }
    gr_data_format f;
    CHECK(gr_data_format_parse("cifar", &f) == -1, "parse cifar accepted");
    CHECK(!strcmp(gr_data_format_name((gr_data_format)5), "?"), "format 5 named %s",
          gr_data_format_name((gr_data_format)5));
    gr_split s;
    CHECK(gr_split_parse("test", &s) == 0 && s == GR_SPLIT_TEST && !strcmp(gr_split_name(GR_SPLIT_TRAIN), "train"),
          "split names");
    CHECK(gr_split_parse("val", &s) == -1 && !strcmp(gr_split_name((gr_split)2), "?"), "split val accepted");
    gr_label_kind l;
    CHECK(gr_label_kind_parse("coarse", &l) == 0 && l == GR_LABELS_COARSE && !strcmp(gr_label_kind_name(l), "coarse"),
          "label kind coarse");
    CHECK(gr_label_kind_parse("fine", &l) == 0 && l == GR_LABELS_FINE, "label kind fine");
    CHECK(gr_label_kind_parse("medium", &l) == -1 && !strcmp(gr_label_kind_name((gr_label_kind)2), "?"),
          "label kind medium accepted");
}

int main(void) {
    RUN(test_schedule_names);
    RUN(test_optimizer_names);
    RUN(test_data_names);
    return check_summary();
}
