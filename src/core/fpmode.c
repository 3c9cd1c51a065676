/* fpmode.c — subnormal floats flushed to zero while graft computes.
 *
 * Arithmetic on subnormal floats (below 1.18e-38) takes a microcode assist
 * on x86: tens to hundreds of cycles an operation.  Training produces them
 * where values decay toward zero: SGD momentum buffers of weights whose
 * gradient has vanished (a head that fits its training set: loss 0.0000),
 * gradients through saturated softmaxes.  Measured on the seed recipe's
 * head (25.7M weights, Fashion-MNIST, 3,000 images): epochs went from 3.8 s
 * to 19-24 s once the loss reached zero.  Flush-to-zero (results) and
 * denormals-are-zero (inputs) keep them at full speed; what they change is
 * below 1.2e-38, far under anything a float32 model resolves (TensorFlow's
 * CPU runtime flushes by default; PyTorch offers torch.set_flush_denormal).
 *
 * The mode is per thread (MXCSR on x86, FPCR on AArch64): entering sets it
 * on the calling thread and on every thread of the OpenMP pool, leaving
 * restores the caller's.  Elsewhere it does nothing.                     */
#include <omp.h>
#include "core.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FLUSH_BITS 0x8040u   /* MXCSR FTZ (bit 15) | DAZ (bit 6) */
static unsigned mode_get(void) { return _mm_getcsr(); }
static void mode_set(unsigned m) { _mm_setcsr(m); }
#elif defined(__aarch64__)
#define FLUSH_BITS (1u << 24)   /* FPCR.FZ */
static unsigned mode_get(void) {
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (unsigned)v;
}
static void mode_set(unsigned m) {
    uint64_t v = m;
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#else
#define FLUSH_BITS 0u
static unsigned mode_get(void) { return 0; }
static void mode_set(unsigned m) { (void)m; }
#endif

static void pool_set(unsigned m, bool flush) {
#pragma omp parallel
    mode_set(flush ? (mode_get() | FLUSH_BITS) : ((mode_get() & ~FLUSH_BITS) | (m & FLUSH_BITS)));
}

unsigned gr_fp_flush_enter(void) {
    unsigned saved = mode_get();
    mode_set(saved | FLUSH_BITS);
    pool_set(saved, true);
    return saved;
}

void gr_fp_flush_leave(unsigned saved) {
    pool_set(saved, false);
    mode_set(saved);
}

bool gr_fp_flushing(void) { return FLUSH_BITS && (mode_get() & FLUSH_BITS) == FLUSH_BITS; }
