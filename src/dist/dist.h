/* dist.h — data parallelism over MPI (Open MPI; built with `make MPI=1`,
 * which defines GRAFT_MPI).  Every function works on MPI_COMM_WORLD, whose
 * state is MPI's own (graft keeps none); a build without MPI compiles the
 * same functions as single-process stubs (rank 0 of 1; collectives are
 * no-ops), so callers never need an #ifdef.
 *
 * Who calls what: the graft command calls gr_dist_init first and
 * gr_dist_exit last; a library user who runs MPI_Init themselves may skip
 * both.  gr_fit (opts.distributed), the sharded extraction and the probe
 * call the collectives; every rank must make the same calls in the same
 * order.  A rank that fails ends the whole job (gr_dist_exit -> MPI_Abort):
 * a collective never waits for a rank that has given up.                   */
#ifndef GRAFT_DIST_H
#define GRAFT_DIST_H
#include <stdbool.h>
#include <stddef.h>
#include "graft.h"

/* Initializes MPI when the process was started by an MPI launcher (mpirun
 * sets OMPI_COMM_WORLD_SIZE / PMIX_RANK); a plain `graft ...` never touches
 * MPI.  Without GRAFT_MPI: under mpirun with more than one rank it fails
 * (the ranks would each run the whole job), naming the fix.              */
gr_status gr_dist_init(int *argc, char ***argv, gr_error *err);
/* Ends the process's MPI part and returns rc: MPI_Finalize when rc == 0,
 * MPI_Abort(rc) (every rank ends) when rc != 0 and there are several ranks. */
int gr_dist_exit(int rc);
/* MPI_Finalize now, for an end every rank reaches together (a stop that
 * travelled in the all-reduce); gr_dist_exit then only returns rc.       */
void gr_dist_finalize(void);
/* Ends every rank now (MPI_Abort); without MPI, exit(code). */
void gr_dist_abort(int code);

bool gr_dist_active(void);      /* MPI is initialized and there are >= 2 ranks */
int gr_dist_rank(void);         /* 0 without MPI */
int gr_dist_size(void);         /* 1 without MPI */
/* Ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE, else 1). */
int gr_dist_local_size(void);

/* The contiguous part [*lo, *hi) of n items that rank r of `size` takes:
 * n / size each, and one more for the first n % size ranks.              */
void gr_dist_shard(int n, int r, int size, int *lo, int *hi);

/* In-place sums over the ranks (one MPI_Allreduce each; n <= INT_MAX). */
gr_status gr_dist_sum_f32(float *buf, size_t n, gr_error *err);
gr_status gr_dist_sum_f64(double *buf, size_t n, gr_error *err);
/* buf holds n rows of `row` floats; each rank has filled its shard's rows
 * (gr_dist_shard(n, rank, size)); afterwards every rank holds all rows.   */
gr_status gr_dist_gather_rows(float *buf, size_t row, int n, gr_error *err);
/* The same for rows of row_bytes bytes (the float16 features cache). */
gr_status gr_dist_gather_rows_bytes(void *buf, size_t row_bytes, int n, gr_error *err);
/* Rank 0 receives the rows of every rank into all (n rows of `row` floats;
 * rank r sends its shard's gr_dist_shard(n, r, size) rows from mine; all
 * is only written on rank 0 and may be NULL elsewhere).                 */
gr_status gr_dist_gather_rows_root(const float *mine, float *all, size_t row, int n, gr_error *err);
/* Copies `bytes` bytes from rank root to every rank. */
gr_status gr_dist_bcast(void *buf, size_t bytes, int root, gr_error *err);

/* gr_evaluate of all of ds, sharded over the ranks: each evaluates its
 * part, the sums are added up (one all-reduce); every rank gets the whole
 * result.  One process: gr_evaluate.  label: gr_evaluate_progress's (under
 * mpirun, rank 0's shard counts); tta_flip: gr_eval_opts'.                                         */
gr_status gr_dist_evaluate(gr_model *m, const gr_dataset *ds, int batch, const char *label, bool tta_flip,
                           gr_eval_result *res, gr_error *err);

#endif
