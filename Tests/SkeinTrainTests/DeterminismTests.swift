import Foundation
import Testing
import SkeinTensor
import SkeinTestSupport
@testable import SkeinTrain

/// A small, real slice of Fashion-MNIST shared by the tests (loaded once).
let fashionSubset: DataSplits = {
    var cfg = DataConfig()
    cfg.limit = 3000
    return try! DataSource.load(cfg, seed: 1)
}()

func smallConfig(epochs: Int = 2, optimizer: OptimizerConfig = OptimizerConfig(kind: .adamw, learningRate: 1e-3, weightDecay: 0.01)) -> TrainConfig {
    var c = TrainConfig(name: "t", seed: 7)
    c.model = ModelConfig(kind: .mlp, hidden: [64, 32], activation: .relu, dropout: 0.1)
    c.training = TrainingSettings(epochs: epochs, batchSize: 64, optimizer: optimizer,
                                  schedule: LearningRateSchedule(kind: .cosine, warmupSteps: 10), clipNorm: 5)
    return c
}

/// Stands in for a group of two in one process: this rank's shard is the first half, the
/// reduce-scatter leaves the gradient as it is and the all-gather brings nothing (the other
/// half would come from the absent rank), so a sharded step updates the first half only.
/// Counts what it is asked to gather.
final class HalfShardReducer: GradientReducer {
    var gathered: [Int] = [] // element counts of the buffers all-gathered, in order
    func reduce(_ gradients: FloatBuffer) throws {}
    func reduceExact(_ sums: FixedPointSum) throws {}
    func reduceCells(_ cells: UnsafeMutableBufferPointer<Int64>) throws {}
    func shard(count: Int) -> Range<Int>? { 0..<count / 2 }
    func reduceScatter(_ gradients: FloatBuffer) throws {}
    func allGather(_ values: FloatBuffer) throws { gathered.append(values.count) }
}

@Suite("Determinism and checkpoints")
struct DeterminismTests {
    @Test("sharded optimiser: a step updates only the shard; checkpoint() is the last whole state until the moments are gathered (every epoch's end, or asked); rolling back replays the same bits")
    func shardedWholeState() throws {
        var cfg = smallConfig()
        cfg.training.clipNorm = 0 // clipping needs the whole gradient: it turns sharding off
        let run = try TrainingRun(config: cfg, splits: fashionSubset, rank: 0, world: 2)
        let t = run.trainer, reducer = HalfShardReducer()
        let n = t.network.parameterCount, half = n / 2
        let initial = t.network.parameters.array
        for _ in 0..<3 { _ = try t.step(reducer: reducer) }
        #expect(Array(t.network.parameters.array[half...]) == Array(initial[half...]), "updated outside its shard")
        #expect(Array(t.network.parameters.array[..<half]) != Array(initial[..<half]))
        #expect(t.optimizer.first.array[half...].allSatisfy { $0 == 0 }, "moments outside the shard were touched")
        #expect(reducer.gathered == [n, n, n], "one all-gather of the parameters per step")
        #expect(t.checkpoint().globalStep == 0 && t.wholeStateStep == 0 && t.checkpoint().parameters == initial)
        try t.completeState(reducer: reducer)
        #expect(reducer.gathered == [n, n, n, n, n], "the two moments gathered")
        let atThree = t.checkpoint()
        #expect(atThree.globalStep == 3 && atThree.parameters == t.network.parameters.array)
        for _ in 0..<2 { _ = try t.step(reducer: reducer) }
        let atFive = t.network.parameters.array
        #expect(t.checkpoint() == atThree && t.wholeStateStep == 3)
        try t.rollBackToWholeState()
        #expect(t.globalStep == 3 && t.network.parameters.array == atThree.parameters)
        for _ in 0..<2 { _ = try t.step(reducer: reducer) }
        #expect(t.network.parameters.array == atFive, "steps after a roll-back differ from the first time")
        // The epoch's last step gathers the moments itself: at its end the state is whole.
        while t.epoch < 1 { _ = try t.step(reducer: reducer) }
        #expect(t.wholeStateStep == t.globalStep && t.checkpoint().globalStep == t.globalStep)
        #expect(Array(reducer.gathered.suffix(3)) == [n, n, n])
        // One rank, or clipping: no sharding.
        let single = try TrainingRun(config: cfg, splits: fashionSubset)
        let none = HalfShardReducer()
        _ = try single.trainer.step(reducer: none)
        #expect(none.gathered.isEmpty && single.trainer.checkpoint().globalStep == 1)
    }

    @Test("two runs with the same seed give bitwise-identical parameters")
    func sameSeed() throws {
        let a = try TrainingRun(config: smallConfig(), splits: fashionSubset)
        try a.run()
        let b = try TrainingRun(config: smallConfig(), splits: fashionSubset)
        try b.run()
        #expect(a.trainer.network.parameters.array == b.trainer.network.parameters.array)
        var other = smallConfig()
        other.seed = 8
        let c = try TrainingRun(config: other, splits: fashionSubset)
        try c.run()
        #expect(a.trainer.network.parameters.array != c.trainer.network.parameters.array)
    }

    @Test("2 epochs straight equal 1 epoch + checkpoint file + load + 1 epoch, bitwise", arguments: [
        OptimizerConfig(kind: .adamw, learningRate: 1e-3, weightDecay: 0.01),
        OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9, nesterov: true),
    ])
    func resumeEqualsStraight(optimizer: OptimizerConfig) throws {
        let straight = try TrainingRun(config: smallConfig(optimizer: optimizer), splits: fashionSubset)
        try straight.run()

        let dir = try TemporaryDirectory.make(prefix: "ckpt")
        let first = try TrainingRun(config: smallConfig(optimizer: optimizer), splits: fashionSubset)
        while first.trainer.epoch < 1 { _ = try first.trainer.step() }
        try first.trainer.checkpoint().write(to: "\(dir)/e1.ckpt")

        let second = try TrainingRun(config: smallConfig(optimizer: optimizer), splits: fashionSubset)
        try second.resume(from: "\(dir)/e1.ckpt")
        #expect(second.trainer.epoch == 1 && second.trainer.globalStep == first.trainer.globalStep)
        try second.run()
        #expect(second.trainer.network.parameters.array == straight.trainer.network.parameters.array)
    }

    @Test("a checkpoint taken mid-epoch also resumes bitwise")
    func midEpoch() throws {
        let straight = try TrainingRun(config: smallConfig(), splits: fashionSubset)
        let straightReport = try #require(try straight.run())
        let first = try TrainingRun(config: smallConfig(), splits: fashionSubset)
        for _ in 0..<(first.trainer.stepsPerEpoch + 17) { _ = try first.trainer.step() }
        let bytes = first.trainer.checkpoint().encoded()
        let second = try TrainingRun(config: smallConfig(), splits: fashionSubset)
        try second.trainer.restore(Checkpoint.decode(bytes, path: "memory"))
        let resumedReport = try #require(try second.run())
        #expect(second.trainer.network.parameters.array == straight.trainer.network.parameters.array)
        // The interrupted epoch's metrics are the same too (its running totals are in the checkpoint).
        #expect(resumedReport.trainLoss == straightReport.trainLoss && resumedReport.trainAccuracy == straightReport.trainAccuracy)
        #expect(resumedReport.test == straightReport.test)
    }

    @Test("training actually learns: a 3,000-row subset reaches > 0.7 test accuracy")
    func learns() throws {
        var cfg = smallConfig(epochs: 3)
        cfg.model.dropout = 0
        let run = try TrainingRun(config: cfg, splits: fashionSubset)
        let report = try #require(try run.run())
        #expect(try #require(report.test?.accuracy) > 0.7)
        #expect(report.trainLoss < 1.0)
    }

    @Test("softmax regression and linear regression train")
    func linearModels() throws {
        var cfg = smallConfig(epochs: 2)
        cfg.model = ModelConfig(kind: .softmaxRegression, hidden: [])
        let run = try TrainingRun(config: cfg, splits: fashionSubset)
        #expect(try #require(try run.run()?.test?.accuracy) > 0.65)

        // y = 2·x0 − x1 + 0.5, learned by linear regression on a CSV.
        let dir = try TemporaryDirectory.make(prefix: "csv")
        var text = "x0,x1,y\n"
        for i in 0..<400 {
            let x0 = Double(i % 20) / 10 - 1, x1 = Double((i * 7) % 13) / 6 - 1
            text += "\(x0),\(x1),\(2 * x0 - x1 + 0.5)\n"
        }
        try text.write(toFile: "\(dir)/lin.csv", atomically: true, encoding: .utf8)
        var lin = TrainConfig(name: "lin", seed: 3)
        lin.data = DataConfig(source: .csv, path: "\(dir)/lin.csv", labelColumn: "y", task: .regression, normalize: .none)
        lin.model = ModelConfig(kind: .linearRegression, hidden: [])
        lin.training = TrainingSettings(epochs: 60, batchSize: 32, optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.1, momentum: 0.9))
        let l = try TrainingRun(config: lin)
        let last = try #require(try l.run())
        #expect(last.trainLoss < 1e-3)
        let w = l.trainer.network.parameters.array
        #expect(abs(w[0] - 2) < 0.05 && abs(w[1] + 1) < 0.05 && abs(w[2] - 0.5) < 0.05)
    }

    @Test("an evaluation shared by 2-4 ranks, their batches' results added cell by cell as int64, equals one process's bit for bit")
    func shardedEvaluation() throws {
        let run = try TrainingRun(config: smallConfig(epochs: 1), splits: fashionSubset)
        try run.run()
        let set = fashionSubset.train
        for batchSize in [1000, 700] { // 700: the last batch is short
            let whole = run.trainer.evaluate(set, batchSize: batchSize)
            for world in 2...4 {
                var cells = [Int64](repeating: 0, count: 2 * ((set.count + batchSize - 1) / batchSize))
                for rank in 0..<world {
                    // What the group's int64 allreduce does: wrapping adds, cell by cell.
                    let mine = run.trainer.evaluateBatches(set, batchSize: batchSize, shard: rank, of: world).flatMap(\.cells)
                    for i in cells.indices { cells[i] &+= mine[i] }
                }
                let batches = stride(from: 0, to: cells.count, by: 2).map { BatchEvaluation(cells: cells[$0...]) }
                let shared = Evaluation(batches: batches, of: set)
                #expect(shared == whole, "world \(world), batch \(batchSize)")
                #expect(shared.loss.bitPattern == whole.loss.bitPattern)
            }
        }
    }

    @Test("rank shards of a global batch are disjoint and cover it")
    func sharding() {
        let order = Array((0..<103).reversed())
        for world in 1...4 {
            for step in 0..<Permutation.stepsPerEpoch(count: 103, globalBatch: 20) {
                var seen: [Int] = []
                for rank in 0..<world { seen += Permutation.shard(of: order, step: step, globalBatch: 20, rank: rank, world: world) }
                #expect(seen == Array(order[(step * 20)..<min(step * 20 + 20, 103)]))
            }
        }
        #expect(Permutation.epochOrder(count: 50, seed: 1, epoch: 0) == Permutation.epochOrder(count: 50, seed: 1, epoch: 0))
        #expect(Permutation.epochOrder(count: 50, seed: 1, epoch: 0) != Permutation.epochOrder(count: 50, seed: 1, epoch: 1))
    }
}
