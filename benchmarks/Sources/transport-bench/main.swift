// Skein's transport, measured the same way as benchmarks/c/nng_raw.c measures raw nng:
//   transport-bench lat URL N        64-byte request/reply round trips: median and p99 in µs
//   transport-bench thr URL SIZE N   one-way push/pull throughput in MB/s
// Both ends run in this process as concurrent tasks over a real ipc:// or tcp:// link, on
// CompletionExecutor (tasks resume on nng's completion threads); SKEIN_BENCH_EXECUTOR=global
// runs them on Swift's global executor instead.
import SkeinTransport
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count >= 4 else { print("usage: transport-bench lat URL N | thr URL SIZE N"); exit(2) }
let url = args[2]
let options = Socket.Options(maxMessageSize: 1 << 30, defaultTimeout: .seconds(60))
let executor: (any TaskExecutor)? = getenv("SKEIN_BENCH_EXECUTOR").map { String(cString: $0) } == "global" ? nil : CompletionExecutor.shared

func latency(n: Int) async throws {
    let warm = n / 10
    let rep = try Socket(.reply, options: options)
    try rep.listen(url)
    let req = try Socket(.request, options: options)
    try req.dial(url)
    let server = Task(executorPreference: executor) {
        for _ in 0..<(n + warm) {
            let m = try await rep.receive()
            try await rep.send(m)
        }
    }
    var lat = [Double]()
    lat.reserveCapacity(n)
    let payload = [UInt8](repeating: 7, count: 64)
    let clock = ContinuousClock()
    for i in 0..<(n + warm) {
        let t0 = clock.now
        try await req.send(try Message(bytes: payload))
        _ = try await req.receive()
        if i >= warm {
            let d = clock.now - t0
            lat.append(Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12)
        }
    }
    try await server.value
    lat.sort()
    print("median_us=\(format2(lat[n / 2])) p99_us=\(format2(lat[Int(Double(n) * 0.99)]))")
}

func throughput(size: Int, n: Int) async throws {
    let pull = try Socket(.pull, options: options)
    try pull.listen(url)
    let push = try Socket(.push, options: options)
    try push.dial(url)
    let source = [UInt8](repeating: 3, count: size)
    let drain = Task(executorPreference: executor) {
        for _ in 0..<n { _ = try await pull.receive() }
    }
    let clock = ContinuousClock()
    let t0 = clock.now
    for _ in 0..<n {
        var m = try Message(count: size)
        m.withUnsafeMutableBytes { dst in source.withUnsafeBytes { dst.copyMemory(from: $0) } }
        try await push.send(m)
    }
    try await drain.value
    let d = clock.now - t0
    let secs = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    print("MBps=\(format2(Double(size * n) / secs / 1e6))")
}

func format2(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    return "\(r)"
}

try await withTaskExecutorPreference(executor) {
    if args[1] == "lat" {
        try await latency(n: Int(args[3])!)
    } else {
        try await throughput(size: Int(args[3])!, n: Int(args[4])!)
    }
}
