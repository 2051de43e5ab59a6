// Allreduce bus bandwidth of SkeinCollective's ring (one process per rank):
//   allreduce-bench RANK WORLD ADDRESS_BASE
// ADDRESS_BASE: a path prefix for ipc:// (payloads through shared memory unless
// SKEIN_BENCH_INLINE=1), a TCP port base, or every rank's address, comma-separated.
// Rank 0 prints, per size, "bytes=B seconds=S busbw_GBps=G" with bus bandwidth = B * 2(n-1)/n / S, as nccl-tests define it.
import Foundation
import SkeinCollective
import SkeinTensor

let args = CommandLine.arguments
guard args.count >= 4, let rank = Int(args[1]), let world = Int(args[2]) else { print("usage: allreduce-bench RANK WORLD BASE"); exit(2) }
let base = args[3]
// BASE may also list every rank's address, comma-separated (a ring mixing ipc:// and tcp://).
let addresses = base.contains(",") ? base.split(separator: ",").map(String.init)
    : (0..<world).map { r in Int(base).map { "tcp://127.0.0.1:\($0 + r)" } ?? "ipc://\(base)-\(r).ipc" }
// SKEIN_BENCH_INLINE=1: payloads in the nng frames even on one host (no shared-memory window).
let inline = ProcessInfo.processInfo.environment["SKEIN_BENCH_INLINE"] == "1"
// SKEIN_BENCH_BLOCKING=1: `allreduceBlocking` on a plain thread, as a training step calls it.
let blocking = ProcessInfo.processInfo.environment["SKEIN_BENCH_BLOCKING"] == "1"
// SKEIN_BENCH_CHUNK=N: frames of at most N floats (default: RingGroup's).
let chunk = ProcessInfo.processInfo.environment["SKEIN_BENCH_CHUNK"].flatMap { Int($0) } ?? 1 << 18
// SKEIN_BENCH_SPIN_US=N: how long a rank spins on a doorbell before it sleeps (default: RingGroup's).
let spin = ProcessInfo.processInfo.environment["SKEIN_BENCH_SPIN_US"].flatMap { Int($0) }.map { Duration.microseconds($0) }
// SKEIN_BENCH_COMPUTE_US=N: the last rank works N µs before each allreduce (blocking mode), as a
// slower rank's step would, so the others wait on the doorbell every time.
let computeMicros = ProcessInfo.processInfo.environment["SKEIN_BENCH_COMPUTE_US"].flatMap { Double($0) } ?? 0
let group = try await RingGroup(rank: rank, addresses: addresses, epoch: 1, timeout: .seconds(30), chunkFloats: chunk, sharedMemory: !inline,
                                spin: spin)
// SKEIN_BENCH_SIZES=B1,B2,...: sizes in bytes (default: the four of issue 6).
let sizes = ProcessInfo.processInfo.environment["SKEIN_BENCH_SIZES"].map { $0.split(separator: ",").compactMap { Int($0) } }
    ?? [4 << 10, 256 << 10, 4 << 20, 64 << 20]
let barrier = FloatBuffer(count: 1)
for bytes in sizes {
    let n = bytes / 4
    let buffer = FloatBuffer(count: n, value: 1)
    let iterations = measuredIterations(bytes: bytes)
    // Warm up (connections, page faults), then time; the same buffer is reused every time.
    for _ in 0..<2 { try await group.allreduce(buffer.buffer) }
    try await group.allreduce(barrier.buffer)
    let clock = ContinuousClock()
    let t0 = clock.now
    if blocking {
        let b = Slot(buffer: buffer.buffer)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            Thread {
                do {
                    for _ in 0..<iterations {
                        if rank == world - 1 && computeMicros > 0 { busy(microseconds: computeMicros) }
                        try group.allreduceBlocking(b.buffer)
                    }
                    c.resume()
                } catch { c.resume(throwing: error) }
            }.start()
        }
    } else {
        for _ in 0..<iterations { try await group.allreduce(buffer.buffer) }
    }
    let d = clock.now - t0
    let seconds = (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) / Double(iterations)
    if rank == 0 {
        let bus = Double(bytes) * 2 * Double(world - 1) / Double(world) / seconds / 1e9
        // With a slower rank, what each step costs beyond its compute: the allreduce plus waking.
        let beyond = computeMicros > 0 && blocking ? String(format: " beyond_compute_us=%.1f", seconds * 1e6 - computeMicros) : ""
        print(String(format: "bytes=%d seconds=%.6f busbw_GBps=%.3f", bytes, seconds, bus) + beyond)
        fflush(nil)
    }
}
try await group.close()

/// Allreduces per timed measurement: BENCH_MEASURE_MIB (default 512) MiB of buffer in total,
/// 4 to 1,000 times: a 4 MiB measurement then spans about a second, not 70 ms that one
/// scheduler hiccup could skew. benchmarks/c/mpi_allreduce.c counts the same way.
func measuredIterations(bytes: Int) -> Int {
    let mib = ProcessInfo.processInfo.environment["BENCH_MEASURE_MIB"].flatMap { Int($0) } ?? 512
    return max(4, min(1000, (mib << 20) / max(bytes, 1)))
}

/// Keeps this thread busy (not asleep) for `microseconds`, like a step's compute.
@Sendable func busy(microseconds: Double) {
    let clock = ContinuousClock()
    let end = clock.now + .nanoseconds(Int64(microseconds * 1000))
    while clock.now < end {}
}

/// The buffer handed to the timing thread; the main task waits for that thread meanwhile.
struct Slot: @unchecked Sendable { let buffer: UnsafeMutableBufferPointer<Float> }
