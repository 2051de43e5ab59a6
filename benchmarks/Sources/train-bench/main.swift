// Training throughput of the built-in trainer against the physical limit measured in the same
// run: the raw sgemm calls that one epoch of the same model needs, with nothing else.
//
//   train-bench [THREADS...]     default: 1 2
//
// Model: MLP 784-256-128-10 (ReLU), Adam, batch 128, Fashion-MNIST's 60,000 training images.
import Foundation
import SkeinTensor
import SkeinTrain

BLASKernel.selectForThisCPU()
let threadCounts = CommandLine.arguments.dropFirst().compactMap { Int($0) }
var cfg = DataConfig()
cfg.normalize = .standard
let splits = try DataSource.load(cfg, seed: 1)
let n = splits.train.count
let batch = 128
let steps = Permutation.stepsPerEpoch(count: n, globalBatch: batch)

/// Seconds for `epochs` epochs of real training (after one warm-up epoch).
func trainEpochSeconds(epochs: Int) throws -> Double {
    var c = TrainConfig(name: "bench", seed: 1)
    c.model = ModelConfig(kind: .mlp, hidden: [256, 128], activation: .relu, dropout: 0)
    c.training = TrainingSettings(epochs: epochs + 1, batchSize: batch, optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-3))
    let run = try TrainingRun(config: c, splits: splits)
    for _ in 0..<steps { _ = try run.trainer.step() }
    let t0 = Date()
    for _ in 0..<(steps * epochs) { _ = try run.trainer.step() }
    return Date().timeIntervalSince(t0) / Double(epochs)
}

/// Seconds for the sgemm/sgemv calls of one epoch alone, on preallocated buffers: the ceiling.
func sgemmEpochSeconds() -> (seconds: Double, flops: Double) {
    let dims = [784, 256, 128, 10]
    let maxW = 784 * 256
    let a = FloatBuffer(count: batch * 784, value: 0.01), b = FloatBuffer(count: maxW, value: 0.01)
    let c = FloatBuffer(count: maxW, value: 0), ones = FloatBuffer(count: batch, value: 1)
    var flops = 0.0
    let t0 = Date()
    for _ in 0..<steps {
        for l in 0..<3 { // forward: (B×in)·(in×out)
            BLAS.gemm(.none, .none, m: batch, n: dims[l + 1], k: dims[l], a: a.pointer, lda: dims[l], b: b.pointer, ldb: dims[l + 1], beta: 1, c: c.pointer, ldc: dims[l + 1])
        }
        for l in (0..<3).reversed() { // backward: dW = xᵀ·dy, db, dx = dy·Wᵀ
            BLAS.gemm(.transpose, .none, m: dims[l], n: dims[l + 1], k: batch, a: a.pointer, lda: dims[l], b: b.pointer, ldb: dims[l + 1], c: c.pointer, ldc: dims[l + 1])
            BLAS.gemv(.transpose, rows: batch, cols: dims[l + 1], a: b.pointer, lda: dims[l + 1], x: ones.pointer, y: c.pointer)
            if l > 0 {
                BLAS.gemm(.none, .transpose, m: batch, n: dims[l], k: dims[l + 1], a: b.pointer, lda: dims[l + 1], b: a.pointer, ldb: dims[l + 1], c: c.pointer, ldc: dims[l])
            }
        }
    }
    let s = Date().timeIntervalSince(t0)
    for l in 0..<3 {
        let f = 2.0 * Double(batch * dims[l] * dims[l + 1])
        flops += f * (l > 0 ? 3 : 2)
    }
    return (s, flops * Double(steps))
}

print("Fashion-MNIST MLP 784-256-128-10, batch \(batch), \(n) samples/epoch, OpenBLAS core \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto")")
print("threads  epoch_s  samples/s  sgemm_ceiling_s  sgemm_GFLOP/s  achieved_GFLOP/s  ceiling/epoch")
for t in threadCounts.isEmpty ? [1, 2] : threadCounts {
    BLAS.setThreadCount(t)
    _ = sgemmEpochSeconds() // warm up
    let ceiling = sgemmEpochSeconds()
    let epoch = try trainEpochSeconds(epochs: 3)
    print(String(format: "%7d  %7.3f  %9.0f  %15.3f  %13.1f  %16.1f  %12.2f", t, epoch, Double(n) / epoch, ceiling.seconds,
                 ceiling.flops / ceiling.seconds / 1e9, ceiling.flops / epoch / 1e9, ceiling.seconds / epoch))
}
