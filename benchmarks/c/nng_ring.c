// A plain ring allreduce for 2 ranks written directly against nng (pair sockets, one message
// per step, blocking calls): what nng itself gives an allreduce without Skein's code, printed by
// scripts/bench-allreduce next to Skein's ring and Open MPI.
//   nng_ring RANK URL0 URL1 BYTES ITERS     (rank 0 prints "bytes=B seconds=S busbw_GBps=G")
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void die(const char *w, int rv) { fprintf(stderr, "%s: %s\n", w, nng_strerror(rv)); exit(1); }
int main(int argc, char **argv) {
    int rank = atoi(argv[1]); const char *mine = argv[2 + rank], *next = argv[2 + (1 - rank)];
    long bytes = atol(argv[4]), iters = atol(argv[5]); long n = bytes / 4, half = n / 2;
    nng_socket in, out; int rv;
    if ((rv = nng_pair1_open(&in)) || (rv = nng_listen(in, mine, NULL, 0))) die("listen", rv);
    nng_socket_set_size(in, NNG_OPT_RECVMAXSZ, 0);
    if ((rv = nng_pair1_open(&out))) die("open", rv);
    nng_socket_set_size(out, NNG_OPT_RECVMAXSZ, 0);
    while ((rv = nng_dial(out, next, NULL, 0)) != 0) { struct timespec d = {0, 10000000}; nanosleep(&d, NULL); }
    float *buf = malloc(bytes); for (long i = 0; i < n; i++) buf[i] = 1;
    double t0 = 0;
    for (long it = 0; it < iters + 2; it++) {
        if (it == 2) t0 = now();
        for (int step = 0; step < 2; step++) {
            // step 0: send my half (rank), receive the other half and add; step 1: send the summed half, receive the other
            float *sendp = buf + (step == 0 ? rank : 1 - rank) * half, *recvp = buf + (step == 0 ? 1 - rank : rank) * half;
            nng_msg *m; if ((rv = nng_msg_alloc(&m, half * 4))) die("alloc", rv);
            memcpy(nng_msg_body(m), sendp, half * 4);
            if ((rv = nng_sendmsg(out, m, 0))) die("send", rv);
            if ((rv = nng_recvmsg(in, &m, 0))) die("recv", rv);
            float *src = nng_msg_body(m);
            if (step == 0) for (long i = 0; i < half; i++) recvp[i] += src[i]; else memcpy(recvp, src, half * 4);
            nng_msg_free(m);
        }
    }
    double s = (now() - t0) / iters;
    if (rank == 0) printf("bytes=%ld seconds=%.6f busbw_GBps=%.3f\n", bytes, s, bytes / s / 1e9);
    nng_msleep(300); // a finished send is not a delivered one: let the last frame arrive before exit
    return 0;
}
