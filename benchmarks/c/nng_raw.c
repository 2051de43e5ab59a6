// Raw nng baseline for the transport benchmark: the same measurements as
// benchmarks/Sources/transport-bench, written directly against libnng.
//   nng_raw lat URL N          64-byte request/reply round trips: median and p99 in µs
//   nng_raw thr URL SIZE N     one-way push/pull throughput in MB/s
// Both ends run in this process, on two threads, over a real ipc:// or tcp:// link.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pipeline0/pull.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what, int rv) { fprintf(stderr, "%s: %s\n", what, nng_strerror(rv)); exit(1); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

struct server { nng_socket s; long n; };

static void *echo(void *arg) {
    struct server *sv = arg;
    for (long i = 0; i < sv->n; i++) {
        nng_msg *m; int rv;
        if ((rv = nng_recvmsg(sv->s, &m, 0)) != 0) die("rep recv", rv);
        if ((rv = nng_sendmsg(sv->s, m, 0)) != 0) die("rep send", rv);
    }
    return NULL;
}

static void *drain(void *arg) {
    struct server *sv = arg;
    for (long i = 0; i < sv->n; i++) {
        nng_msg *m; int rv;
        if ((rv = nng_recvmsg(sv->s, &m, 0)) != 0) die("pull recv", rv);
        nng_msg_free(m);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: nng_raw lat URL N | thr URL SIZE N\n"); return 2; }
    int rv; pthread_t t; struct server sv;
    const char *url = argv[2];
    if (strcmp(argv[1], "lat") == 0) {
        long n = atol(argv[3]);
        nng_socket rep, req;
        if ((rv = nng_rep0_open(&rep)) != 0 || (rv = nng_listen(rep, url, NULL, 0)) != 0) die("listen", rv);
        if ((rv = nng_req0_open(&req)) != 0 || (rv = nng_dial(req, url, NULL, 0)) != 0) die("dial", rv);
        long warm = n / 10;
        sv.s = rep; sv.n = n + warm;
        pthread_create(&t, NULL, echo, &sv);
        double *lat = malloc(sizeof(double) * n);
        char payload[64]; memset(payload, 7, sizeof payload);
        for (long i = 0; i < n + warm; i++) {
            nng_msg *m;
            double t0 = now();
            if ((rv = nng_msg_alloc(&m, 64)) != 0) die("alloc", rv);
            memcpy(nng_msg_body(m), payload, 64);
            if ((rv = nng_sendmsg(req, m, 0)) != 0) die("req send", rv);
            if ((rv = nng_recvmsg(req, &m, 0)) != 0) die("req recv", rv);
            nng_msg_free(m);
            if (i >= warm) lat[i - warm] = (now() - t0) * 1e6;
        }
        pthread_join(t, NULL);
        qsort(lat, n, sizeof(double), cmp);
        printf("median_us=%.2f p99_us=%.2f\n", lat[n / 2], lat[(long)(n * 0.99)]);
    } else {
        if (argc < 5) { fprintf(stderr, "thr needs SIZE N\n"); return 2; }
        size_t size = (size_t)atol(argv[3]); long n = atol(argv[4]);
        nng_socket pull, push;
        if ((rv = nng_pull0_open(&pull)) != 0) die("pull", rv);
        nng_socket_set_size(pull, NNG_OPT_RECVMAXSZ, 0);
        if ((rv = nng_listen(pull, url, NULL, 0)) != 0) die("listen", rv);
        if ((rv = nng_push0_open(&push)) != 0 || (rv = nng_dial(push, url, NULL, 0)) != 0) die("dial", rv);
        sv.s = pull; sv.n = n;
        char *src = malloc(size); memset(src, 3, size);
        pthread_create(&t, NULL, drain, &sv);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            nng_msg *m;
            if ((rv = nng_msg_alloc(&m, size)) != 0) die("alloc", rv);
            memcpy(nng_msg_body(m), src, size);
            if ((rv = nng_sendmsg(push, m, 0)) != 0) die("push send", rv);
        }
        pthread_join(t, NULL);
        double secs = now() - t0;
        printf("MBps=%.1f\n", (double)size * n / secs / 1e6);
    }
    return 0;
}
