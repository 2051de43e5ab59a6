// A data-parallel step's reduction and optimiser update, both ways, in the same run:
//   allreduce: allreduce the gradient, then every rank applies AdamW to all parameters;
//   sharded:   reduce-scatter the gradient, each rank applies AdamW to its shard only, then
//              all-gather the parameters (ZeRO stage 1, `training.shard_optimizer`).
// The two alternate step by step (so a slow spell of the machine hits both alike), on a plain
// thread with the blocking collectives and the gradient in the ring's shared-memory window,
// as `skein train --ranks` runs a step. A fresh gradient is written before each step, as a
// backward pass would.
//
//   update-bench RANK WORLD ADDRESS_BASE [PARAMETERS] [STEPS]
//
// PARAMETERS defaults to 235,146 (the Fashion-MNIST MLP 784-256-128-10). Rank 0 prints the
// median microseconds per step of each way, their parts, and the ratio.
import Foundation
import SkeinCollective
import SkeinTensor
import SkeinTrain

let args = CommandLine.arguments
guard args.count >= 4, let rank = Int(args[1]), let world = Int(args[2]) else {
    print("usage: update-bench RANK WORLD ADDRESS_BASE [PARAMETERS] [STEPS]"); exit(2)
}
let count = args.count > 4 ? Int(args[4]) ?? 235_146 : 235_146
let steps = args.count > 5 ? Int(args[5]) ?? 2_000 : 2_000
let addresses = (0..<world).map { r in Int(args[3]).map { "tcp://127.0.0.1:\($0 + r)" } ?? "ipc://\(args[3])-\(r).ipc" }
let group = try await RingGroup(rank: rank, addresses: addresses, epoch: 1, timeout: .seconds(30))

/// The steps, run on a plain thread (blocking collectives must not hold a task's thread).
/// `@unchecked Sendable`: only that thread touches it until the main task, which waits for
/// the thread to finish, reads the timings.
final class Steps: @unchecked Sendable {
    let parameters = FloatBuffer(count: count, value: 0.5)
    let optimizer = Optimizer(OptimizerConfig(kind: .adamw, learningRate: 1e-3, weightDecay: 0.01), parameterCount: count)
    /// Microseconds per step and part.
    var allreduce: [Double] = [], fullUpdate: [Double] = []
    var reduceScatter: [Double] = [], shardUpdate: [Double] = [], allGather: [Double] = []

    func run() throws {
        let clock = ContinuousClock()
        func us(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12 }
        let warmUp = 20
        for step in 0..<(2 * steps + warmUp) {
            let g = group.stagingBuffer(count: count) ?? FloatBuffer(count: count)
            let value = Float(group.rank + 1) * 1e-3 * Float(step % 7 + 1)
            for i in 0..<count { g.pointer[i] = value }
            let t0 = clock.now
            if step % 2 == 1 {
                try group.reduceScatterBlocking(g.buffer)
                let t1 = clock.now
                optimizer.update(parameters: parameters, gradients: g, lr: 1e-3, range: group.shard(count: count))
                let t2 = clock.now
                try group.allGatherBlocking(parameters.buffer)
                if step >= warmUp { reduceScatter.append(us(t1 - t0)); shardUpdate.append(us(t2 - t1)); allGather.append(us(clock.now - t2)) }
            } else {
                try group.allreduceBlocking(g.buffer)
                let t1 = clock.now
                optimizer.update(parameters: parameters, gradients: g, lr: 1e-3)
                if step >= warmUp { allreduce.append(us(t1 - t0)); fullUpdate.append(us(clock.now - t1)) }
            }
        }
    }
}

let run = Steps()
try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
    Thread { do { try run.run(); c.resume() } catch { c.resume(throwing: error) } }.start()
}
try await group.close()
func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
if rank == 0 {
    let a = median(zip(run.allreduce, run.fullUpdate).map { $0 + $1 })
    let s = median((0..<run.allGather.count).map { run.reduceScatter[$0] + run.shardUpdate[$0] + run.allGather[$0] })
    print(String(format: "parameters=%d world=%d allreduce+update_us=%.1f (%.1f + %.1f) sharded_us=%.1f (%.1f + %.1f + %.1f) ratio=%.2f",
                 count, world, a, median(run.allreduce), median(run.fullUpdate),
                 s, median(run.reduceScatter), median(run.shardUpdate), median(run.allGather), a / s))
}
