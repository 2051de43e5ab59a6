// How long a process sleeping in FUTEX_WAIT on one CPU takes to run again after another CPU
// rings it, as the collective's shared-memory doorbell does (benchmarks/RESULTS.md, issue 6):
//   cc -O2 -o benchmarks/bin/futex_wake benchmarks/c/futex_wake.c
//   futex_wake GAP_US [ROUNDS]
// The waker (CPU 0) stays busy for GAP_US before each ring — long enough for the sleeper's
// (CPU 1) vCPU to halt — then stores the round number, calls FUTEX_WAKE and spins until the
// sleeper has written the time it woke. Prints the mean and the largest wake-up latency.
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

struct shared {
    _Atomic int bell;       // the round the waker rang
    _Atomic double woke_at; // when the sleeper ran again
};

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: futex_wake GAP_US [ROUNDS]\n"); return 2; }
    double gap = atof(argv[1]) * 1e-6;
    int rounds = argc > 2 ? atoi(argv[2]) : 2000;
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) { perror("mmap"); return 1; }
    atomic_store(&s->bell, 0);
    atomic_store(&s->woke_at, 0.0);
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        for (int i = 1; i <= rounds; i++) {
            while (atomic_load(&s->bell) == i - 1) syscall(SYS_futex, &s->bell, FUTEX_WAIT, i - 1, NULL, NULL, 0);
            atomic_store(&s->woke_at, now());
        }
        _exit(0);
    }
    pin(0);
    double sum = 0, worst = 0;
    for (int i = 1; i <= rounds; i++) {
        double busy = now();
        while (now() - busy < gap) {}
        double rang = now();
        atomic_store(&s->bell, i);
        syscall(SYS_futex, &s->bell, FUTEX_WAKE, 1, NULL, NULL, 0);
        while (atomic_load(&s->woke_at) < rang) {}
        double latency = atomic_load(&s->woke_at) - rang;
        sum += latency;
        if (latency > worst) worst = latency;
    }
    waitpid(child, NULL, 0);
    printf("gap %.0f us: wake-up latency mean %.1f us, max %.1f us (%d rounds)\n", gap * 1e6, sum / rounds * 1e6,
           worst * 1e6, rounds);
    return 0;
}
