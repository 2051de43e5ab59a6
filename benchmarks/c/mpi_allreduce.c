// MPI_Allreduce bus bandwidth, the peer of benchmarks/Sources/allreduce-bench (same sizes,
// same iteration counts, same buffer reuse). Rank 0 prints "bytes=B seconds=S busbw_GBps=G".
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *env = getenv("BENCH_MEASURE_MIB"); // as allreduce-bench: MiB of buffer per measurement
    long measure_mib = env ? atol(env) : 512;
    long sizes[4] = {4L << 10, 256L << 10, 4L << 20, 64L << 20};
    for (int s = 0; s < 4; s++) {
        long bytes = sizes[s], n = bytes / 4;
        float *buf = malloc(bytes), *out = malloc(bytes);
        for (long i = 0; i < n; i++) buf[i] = 1.0f;
        long it = (measure_mib << 20) / bytes;
        if (it > 1000) it = 1000;
        if (it < 4) it = 4;
        for (int w = 0; w < 2; w++) MPI_Allreduce(buf, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (long i = 0; i < it; i++) MPI_Allreduce(buf, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double secs = (MPI_Wtime() - t0) / it;
        if (rank == 0) printf("bytes=%ld seconds=%.6f busbw_GBps=%.3f\n", bytes, secs, bytes * 2.0 * (world - 1) / world / secs / 1e9);
        fflush(stdout);
        free(buf); free(out);
    }
    MPI_Finalize();
    return 0;
}
