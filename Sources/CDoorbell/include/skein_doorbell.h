#ifndef SKEIN_DOORBELL_H
#define SKEIN_DOORBELL_H
#include <stdint.h>

// A doorbell between two processes that share a memory mapping (the ring's shared-memory
// window): the sender publishes a 64-bit ready word with release order and rings a 32-bit
// futex word; the receiver spins on the ready word briefly, then sleeps in the kernel on the
// futex word. The receiver may map the memory read-only: it only loads and waits.

/// *word = value, with release order (everything written before is visible to an acquiring load).
void skein_store_release_u64(uint64_t *word, uint64_t value);
/// *word, with acquire order.
uint64_t skein_load_acquire_u64(const uint64_t *word);
/// *bell, with acquire order.
uint32_t skein_bell_load(const uint32_t *bell);
/// Increments *bell (release) and wakes every process sleeping on it.
void skein_bell_ring(uint32_t *bell);
/// Sleeps while *bell == seen, at most timeout_ns: 0 when woken or *bell had already changed,
/// 1 after the timeout, -1 on another error (errno). Spurious wake-ups return 0: re-check.
int skein_bell_wait(const uint32_t *bell, uint32_t seen, int64_t timeout_ns);
/// A CPU hint for spin-wait loops (x86 `pause`).
void skein_spin_pause(void);

#endif
