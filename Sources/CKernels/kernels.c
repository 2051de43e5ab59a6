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
