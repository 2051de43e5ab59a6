// A plain 2-rank ring allreduce written directly against nng's stream API (tcp byte streams,
// whole halves per step, aio callbacks that resubmit partial transfers, a semaphore per
// operation): what nng streams give without Skein's code, printed by scripts/bench-allreduce.
//   nng_stream_ring RANK URL0 URL1 BYTES ITERS [CHUNK_BYTES]  (rank 0 prints "bytes=B seconds=S busbw_GBps=G")
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void die(const char *w, int rv) { fprintf(stderr, "%s: %s\n", w, nng_strerror(rv)); exit(1); }
typedef struct { nng_aio *aio; nng_stream *s; char *p; size_t left; int send; sem_t done; } op;
static void cb(void *arg) {
    op *o = arg; int rv = nng_aio_result(o->aio); if (rv) die("io", rv);
    size_t c = nng_aio_count(o->aio); o->p += c; o->left -= c;
    if (o->left == 0) { sem_post(&o->done); return; }
    nng_iov iov = { o->p, o->left }; nng_aio_set_iov(o->aio, 1, &iov);
    if (o->send) nng_stream_send(o->s, o->aio); else nng_stream_recv(o->s, o->aio);
}
static void start(op *o, void *p, size_t n) {
    o->p = p; o->left = n; nng_iov iov = { p, n }; nng_aio_set_iov(o->aio, 1, &iov);
    if (o->send) nng_stream_send(o->s, o->aio); else nng_stream_recv(o->s, o->aio);
}
int main(int argc, char **argv) {
    int rank = atoi(argv[1]); const char *mine = argv[2 + rank], *next = argv[2 + (1 - rank)];
    long bytes = atol(argv[4]), iters = atol(argv[5]); long n = bytes / 4, half = n / 2;
    long chunk = argc > 6 ? atol(argv[6]) / 4 : half;
    nng_stream_listener *l; nng_stream_dialer *d; int rv;
    if ((rv = nng_stream_listener_alloc(&l, mine)) || (rv = nng_stream_listener_listen(l))) die("listen", rv);
    nng_stream_dialer_alloc(&d, next);
    nng_aio *a; nng_aio_alloc(&a, NULL, NULL);
    nng_stream *out = NULL, *in = NULL;
    for (;;) { nng_stream_dialer_dial(d, a); nng_aio_wait(a); if (nng_aio_result(a) == 0) { out = nng_aio_get_output(a, 0); break; } nng_msleep(10); }
    nng_stream_listener_accept(l, a); nng_aio_wait(a); if ((rv = nng_aio_result(a))) die("accept", rv); in = nng_aio_get_output(a, 0);
    bool one = true; nng_stream_set_bool(out, NNG_OPT_TCP_NODELAY, one);
    op so = { .s = out, .send = 1 }, ro = { .s = in, .send = 0 };
    nng_aio_alloc(&so.aio, cb, &so); nng_aio_alloc(&ro.aio, cb, &ro); sem_init(&so.done, 0, 0); sem_init(&ro.done, 0, 0);
    float *buf = malloc(bytes), *tmp = malloc(chunk * 4 * 2); for (long i = 0; i < n; i++) buf[i] = 1;
    double t0 = 0;
    for (long it = 0; it < iters + 2; it++) {
        if (it == 2) t0 = now();
        for (int step = 0; step < 2; step++) {
            float *sendp = buf + (step == 0 ? rank : 1 - rank) * half, *recvp = buf + (step == 0 ? 1 - rank : rank) * half;
            for (long off = 0; off < half; off += chunk) {
                long c = half - off < chunk ? half - off : chunk;
                start(&so, sendp + off, c * 4);
                start(&ro, step == 0 ? tmp : recvp + off, c * 4);
                sem_wait(&ro.done);
                if (step == 0) for (long i = 0; i < c; i++) recvp[off + i] += tmp[i];
                sem_wait(&so.done);
            }
        }
    }
    double s = (now() - t0) / iters;
    if (rank == 0) printf("bytes=%ld seconds=%.6f busbw_GBps=%.3f\n", bytes, s, bytes / s / 1e9);
    nng_msleep(300);
    return 0;
}
