/* st_table.h — a safetensors file as a named-tensor table (wtable.h).
 *
 * Names: graft's own "<layer>/<kind>" (HWIO kernels), or torchvision's
 * "<module>.weight" / ".bias" / ".running_mean" ... (OIHW conv and
 * [out][in] dense kernels: marked for transposition at load, layers in
 * torchvision's module order).  A flat table (the graft model file) keeps
 * every tensor as stored in one unnamed layer, looked up by full name.     */
#ifndef GRAFT_FORMAT_ST_TABLE_H
#define GRAFT_FORMAT_ST_TABLE_H
#include "format/safetensors.h"
#include "format/wtable.h"

/* Fills wf (holding path) from the safetensors file at wf->path, grouping
 * tensors into layers by their names.  On failure *err says why (wf is then
 * closed by the caller).                                                  */
gr_status gr_st_table_open(gr_wfile *wf, gr_error *err);
/* A flat table over an open file; on success the table owns sf (closed
 * with it), on failure (NULL) the caller still does.                      */
gr_wfile *gr_st_table_flat(gr_st_file *sf, gr_error *err);

#endif
