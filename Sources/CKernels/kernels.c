#include "skein_kernels.h"
// __builtin_elementwise_sqrt: a correctly rounded square root that, unlike sqrtf, never sets errno,
// so the loop vectorises.

// No fused multiply-add: a*b+c must round twice on every CPU, or results would depend on the
// instruction set the dispatcher picked.
#pragma clang fp contract(off)

#if defined(__x86_64__) && defined(__clang__)
#define SKEIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SKEIN_CLONES
#endif

SKEIN_CLONES
void skein_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                       float b1, float b2, float l2, float decay, float step_size, float inv_c2, float eps) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] + l2 * p[i];
        float mi = b1 * m[i] + c1 * grad;
        float vi = b2 * v[i] + c2 * grad * grad;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (__builtin_elementwise_sqrt(vi * inv_c2) + eps);
    }
}

SKEIN_CLONES
void skein_relu(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

SKEIN_CLONES
void skein_relu_backward(const float *restrict x, const float *restrict dy, float *restrict dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

SKEIN_CLONES
void skein_multiply(const float *restrict x, const float *restrict y, float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++) z[i] = x[i] * y[i];
}

SKEIN_CLONES
void skein_add(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] + x[i];
}

SKEIN_CLONES
void skein_scale(float *restrict x, float a, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] * a;
}

SKEIN_CLONES
void skein_add_i64(const int64_t *restrict x, int64_t *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)y[i] + (uint64_t)x[i]);
}

SKEIN_CLONES
size_t skein_fixed_accumulate(const float *restrict g, int64_t *restrict acc, size_t n, int bits, double limit) {
    const double scale = __builtin_ldexp(1.0, bits); // exact: a power of two
    // Adding 1.5 * 2^52 to a double of magnitude below 2^51 rounds it to an integer (to nearest,
    // ties to even) held in the low mantissa bits: a rounding conversion to int64 that
    // vectorises without AVX-512DQ. `limit` is at most 2^51 (checked by the caller).
    const double magic = 6755399441055744.0;
    int64_t magic_bits;
    __builtin_memcpy(&magic_bits, &magic, sizeof magic);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)g[i] * scale; // exact: a float times a power of two fits a double
        int ok = __builtin_fabs(v) < limit; // false for NaN too
        double t = (ok ? v : 0.0) + magic;
        int64_t t_bits;
        __builtin_memcpy(&t_bits, &t, sizeof t);
        bad += !ok;
        acc[i] = (int64_t)((uint64_t)acc[i] + (uint64_t)(t_bits - magic_bits));
    }
    return bad;
}

SKEIN_CLONES
void skein_fixed_to_float(const int64_t *restrict acc, float *restrict g, size_t n, int bits) {
    const double scale = __builtin_ldexp(1.0, -bits);
    for (size_t i = 0; i < n; i++) g[i] = (float)((double)acc[i] * scale);
}
