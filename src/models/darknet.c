/* darknet.c — placeholder until the darknet .cfg reader lands. */
#include "model.h"

gr_model *gr_darknet_load_cfg(const char *cfg_path, int h, int w, gr_error *err) {
    (void)h; (void)w;
    gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: darknet .cfg files are not supported yet", cfg_path);
    return NULL;
}
