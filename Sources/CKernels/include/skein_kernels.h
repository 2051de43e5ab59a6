#ifndef SKEIN_KERNELS_H
#define SKEIN_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// One Adam/AdamW update over n parameters (see Sources/SkeinTrain/Optimizer.swift for the
/// maths). Compiled for several instruction sets and chosen at load time by the CPU; every
/// version performs the same IEEE operations in the same order, without FMA contraction,
/// so results are bitwise identical on any x86-64 machine.
void skein_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                       float b1, float b2, float l2, float decay, float step_size, float inv_c2, float eps);

/// y = max(x, 0)
void skein_relu(const float *restrict x, float *restrict y, size_t n);
/// dx = x > 0 ? dy : 0
void skein_relu_backward(const float *restrict x, const float *restrict dy, float *restrict dx, size_t n);
/// z = x * y (element-wise)
void skein_multiply(const float *restrict x, const float *restrict y, float *restrict z, size_t n);

/// y = y + x (element-wise; the same bits as saxpy with alpha 1, without BLAS threads)
void skein_add(const float *restrict x, float *restrict y, size_t n);
/// x = a * x
void skein_scale(float *restrict x, float a, size_t n);

/// y = y + x over int64, wrapping (two's complement): exact and associative, so every order of
/// additions gives the same bits (the exact allreduce).
void skein_add_i64(const int64_t *restrict x, int64_t *restrict y, size_t n);
/// acc += round(g * 2^bits) (fixed point, round to nearest even) for every element whose scaled
/// magnitude is below `limit` (at most 2^51); returns how many were not (too large, infinite or
/// NaN), which are left out.
size_t skein_fixed_accumulate(const float *restrict g, int64_t *restrict acc, size_t n, int bits, double limit);
/// g = acc * 2^-bits (rounded to the nearest float)
void skein_fixed_to_float(const int64_t *restrict acc, float *restrict g, size_t n, int bits);

#endif
