/* dist.c — the MPI calls of data-parallel training (see dist.h).  With
 * GRAFT_MPI undefined every function is its single-process stub.         */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "dist/dist.h"
#include "graph/model.h"
#ifdef GRAFT_MPI
#include <mpi.h>
#endif

/* Whether an MPI launcher started this process (and with how many ranks). */
static int launcher_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    if (!s) s = getenv("PMIX_SIZE");
    if (!s) return getenv("PMIX_RANK") ? 2 : 0;
    int n = atoi(s);
    return n > 0 ? n : 0;
}

void gr_dist_shard(int n, int r, int size, int *lo, int *hi) {
    if (size < 1) size = 1;
    int q = n / size, rem = n % size;
    *lo = r * q + (r < rem ? r : rem);
    *hi = *lo + q + (r < rem ? 1 : 0);
}

int gr_dist_local_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!s) s = getenv("MPI_LOCALNRANKS");
    int n = s ? atoi(s) : 1;
    return n > 0 ? n : 1;
}

#ifdef GRAFT_MPI

gr_status gr_dist_init(int *argc, char ***argv, gr_error *err) {
    int init = 0;
    MPI_Initialized(&init);
    if (init || launcher_size() == 0) return GR_OK;   /* a plain run: no MPI */
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return gr_error_set(err, GR_ERR_BACKEND, "MPI_Init failed");
    return GR_OK;
}

static bool initialized(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    if (init) MPI_Finalized(&fin);
    return init && !fin;
}

int gr_dist_rank(void) {
    int r = 0;
    if (initialized()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int gr_dist_size(void) {
    int n = 1;
    if (initialized()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

bool gr_dist_active(void) { return gr_dist_size() > 1; }

void gr_dist_abort(int code) {
    if (initialized()) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code);
}

void gr_dist_finalize(void) {
    if (initialized()) MPI_Finalize();
}

int gr_dist_exit(int rc) {
    if (!initialized()) return rc;
    if (rc != 0 && gr_dist_size() > 1) gr_dist_abort(rc);
    MPI_Finalize();
    return rc;
}

static gr_status mpi_failed(gr_error *err, const char *what, int rc) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return gr_error_set(err, GR_ERR_BACKEND, "rank %d: %s failed: %s", gr_dist_rank(), what, s);
}

/* Counts and displacements (in rows) of the shards of n rows over size ranks. */
static int *shard_counts(int n, int size, gr_error *err) {
    int *cnt = gr_malloc(2 * (size_t)size * sizeof(int), err);
    if (!cnt) return NULL;
    for (int r = 0; r < size; r++) {
        int lo, hi;
        gr_dist_shard(n, r, size, &lo, &hi);
        cnt[r] = hi - lo;
        cnt[size + r] = lo;
    }
    return cnt;
}

gr_status gr_dist_sum_f32(float *buf, size_t n, gr_error *err) {
    if (!gr_dist_active() || n == 0) return GR_OK;
    if (n > INT_MAX) return gr_error_set(err, GR_ERR_UNSUPPORTED, "all-reduce of %zu floats (max %d)", n, INT_MAX);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? GR_OK : mpi_failed(err, "MPI_Allreduce", rc);
}

gr_status gr_dist_sum_f64(double *buf, size_t n, gr_error *err) {
    if (!gr_dist_active() || n == 0) return GR_OK;
    if (n > INT_MAX) return gr_error_set(err, GR_ERR_UNSUPPORTED, "all-reduce of %zu doubles (max %d)", n, INT_MAX);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? GR_OK : mpi_failed(err, "MPI_Allreduce", rc);
}

gr_status gr_dist_gather_rows(float *buf, size_t row, int n, gr_error *err) {
    return gr_dist_gather_rows_bytes(buf, row * sizeof(float), n, err);   /* the same bytes on every rank */
}

gr_status gr_dist_gather_rows_bytes(void *buf, size_t row_bytes, int n, gr_error *err) {
    int size = gr_dist_size();
    if (size < 2 || n == 0 || row_bytes == 0) return GR_OK;
    if (row_bytes > INT_MAX) return gr_error_set(err, GR_ERR_UNSUPPORTED, "gather of rows of %zu bytes", row_bytes);
    int *cnt = shard_counts(n, size, err);
    if (!cnt) return GR_ERR_NOMEM;
    int *disp = cnt + size;
    MPI_Datatype t;
    int rc = MPI_Type_contiguous((int)row_bytes, MPI_BYTE, &t);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&t);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, disp, t, MPI_COMM_WORLD);
        MPI_Type_free(&t);
    }
    free(cnt);
    return rc == MPI_SUCCESS ? GR_OK : mpi_failed(err, "MPI_Allgatherv", rc);
}

gr_status gr_dist_gather_rows_root(const float *mine, float *all, size_t row, int n, gr_error *err) {
    int size = gr_dist_size(), rank = gr_dist_rank();
    if (size < 2) {
        if (all != mine && n > 0) memcpy(all, mine, (size_t)n * row * sizeof(float));
        return GR_OK;
    }
    if (row == 0 || row > INT_MAX) return gr_error_set(err, GR_ERR_UNSUPPORTED, "gather of rows of %zu floats", row);
    int *cnt = shard_counts(n, size, err);
    if (!cnt) return GR_ERR_NOMEM;
    MPI_Datatype t;
    int rc = MPI_Type_contiguous((int)row, MPI_FLOAT, &t);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&t);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Gatherv(mine, cnt[rank], t, all, cnt, cnt + size, t, 0, MPI_COMM_WORLD);
        MPI_Type_free(&t);
    }
    free(cnt);
    return rc == MPI_SUCCESS ? GR_OK : mpi_failed(err, "MPI_Gatherv", rc);
}

gr_status gr_dist_bcast(void *buf, size_t bytes, int root, gr_error *err) {
    if (!gr_dist_active() || bytes == 0) return GR_OK;
    if (bytes > INT_MAX) return gr_error_set(err, GR_ERR_UNSUPPORTED, "broadcast of %zu bytes", bytes);
    int rc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? GR_OK : mpi_failed(err, "MPI_Bcast", rc);
}

#else /* single process */

gr_status gr_dist_init(int *argc, char ***argv, gr_error *err) {
    (void)argc; (void)argv;
    if (launcher_size() > 1)
        return gr_error_set(err, GR_ERR_UNSUPPORTED,
                            "started by mpirun with %d ranks, but this graft was built without MPI: "
                            "build it with `make MPI=1` (Debian: apt-get install libopenmpi-dev)",
                            launcher_size());
    return GR_OK;
}
int gr_dist_exit(int rc) { return rc; }
void gr_dist_finalize(void) {}
void gr_dist_abort(int code) { exit(code); }
bool gr_dist_active(void) { return false; }
int gr_dist_rank(void) { return 0; }
int gr_dist_size(void) { return 1; }
gr_status gr_dist_sum_f32(float *buf, size_t n, gr_error *err) { (void)buf; (void)n; (void)err; return GR_OK; }
gr_status gr_dist_sum_f64(double *buf, size_t n, gr_error *err) { (void)buf; (void)n; (void)err; return GR_OK; }
gr_status gr_dist_gather_rows(float *buf, size_t row, int n, gr_error *err) {
    (void)buf; (void)row; (void)n; (void)err;
    return GR_OK;
}

gr_status gr_dist_gather_rows_bytes(void *buf, size_t row_bytes, int n, gr_error *err) {
    (void)buf; (void)row_bytes; (void)n; (void)err;
    return GR_OK;
}
gr_status gr_dist_gather_rows_root(const float *mine, float *all, size_t row, int n, gr_error *err) {
    (void)err;
    if (all != mine && n > 0) memcpy(all, mine, (size_t)n * row * sizeof(float));
    return GR_OK;
}
gr_status gr_dist_bcast(void *buf, size_t bytes, int root, gr_error *err) {
    (void)buf; (void)bytes; (void)root; (void)err;
    return GR_OK;
}

#endif
