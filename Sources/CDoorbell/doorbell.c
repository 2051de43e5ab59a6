#include "skein_doorbell.h"
#include <errno.h>
#include <stddef.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void skein_store_release_u64(uint64_t *word, uint64_t value) { __atomic_store_n(word, value, __ATOMIC_RELEASE); }

uint64_t skein_load_acquire_u64(const uint64_t *word) { return __atomic_load_n(word, __ATOMIC_ACQUIRE); }

uint32_t skein_bell_load(const uint32_t *bell) { return __atomic_load_n(bell, __ATOMIC_ACQUIRE); }

void skein_bell_ring(uint32_t *bell) {
    __atomic_fetch_add(bell, 1, __ATOMIC_RELEASE);
    // Not FUTEX_PRIVATE: the waiter is another process (a shared mapping).
    syscall(SYS_futex, bell, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

int skein_bell_wait(const uint32_t *bell, uint32_t seen, int64_t timeout_ns) {
    if (timeout_ns <= 0) return 1;
    struct timespec t = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    if (syscall(SYS_futex, bell, FUTEX_WAIT, seen, &t, NULL, 0) == 0) return 0;
    if (errno == EAGAIN || errno == EINTR) return 0; // the word changed first, or a signal: re-check
    if (errno == ETIMEDOUT) return 1;
    return -1;
}

void skein_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
