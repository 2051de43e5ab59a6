// How well this machine's two cores scale on pure arithmetic (issue 6, benchmarks/RESULTS.md):
//   cc -O2 -march=native -o benchmarks/bin/fma_ceiling benchmarks/c/fma_ceiling.c
//   fma_ceiling [ITERATIONS]
// prints this process's multiply-add rate in GFLOP/s, from twelve independent chains of vector
// fused multiply-adds held in registers (no memory traffic). Run alone on one core, then on both
// cores at once: a synchronous data-parallel step waits for the slower core, so 2 × (slower
// rate with both busy) / (rate alone) is what the arithmetic units allow a pair of ranks; a
// training step also moves memory, which this leaves out.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// 16 floats: one AVX-512 register with -march=native on this machine, two AVX2 ones elsewhere.
typedef float vec __attribute__((vector_size(64)));
enum { CHAINS = 12 }; // enough independent chains to cover the multiply-add latency (4 cycles × 2 ports)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 50000000L;
    volatile float tiny = 1e-7f; // not a constant, so the compiler cannot work the loop out
    vec scale, shift, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int j = 0; j < 16; j++) {
        scale[j] = 1.0f - tiny; shift[j] = tiny;
        a0[j] = a1[j] = a2[j] = a3[j] = a4[j] = a5[j] = 1.0f + (float)j * 1e-7f;
        a6[j] = a7[j] = a8[j] = a9[j] = a10[j] = a11[j] = 1.0f - (float)j * 1e-7f;
    }
    // Twelve named accumulators, so the compiler keeps each in a register (an array of them
    // went through memory, and store-to-load latency, not the multiply-adds, set the rate).
    double start = now();
    for (long k = 0; k < iterations; k++) {
        a0 = a0 * scale + shift; a1 = a1 * scale + shift; a2 = a2 * scale + shift; a3 = a3 * scale + shift;
        a4 = a4 * scale + shift; a5 = a5 * scale + shift; a6 = a6 * scale + shift; a7 = a7 * scale + shift;
        a8 = a8 * scale + shift; a9 = a9 * scale + shift; a10 = a10 * scale + shift; a11 = a11 * scale + shift;
    }
    double seconds = now() - start;
    vec all = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    float sum = 0;
    for (int j = 0; j < 16; j++) sum += all[j];
    // The sum is printed so the loop's results are used.
    printf("%.2f GFLOP/s (checksum %g)\n", (double)iterations * CHAINS * 16 * 2 / seconds / 1e9, sum);
    return 0;
}
