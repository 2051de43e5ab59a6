import SkeinRandom
import SkeinTensor

/// Loss and accuracy over some rows.
public struct Evaluation: Equatable, Sendable {
    public var loss: Double
    /// Fraction correct (classification); nil for regression.
    public var accuracy: Double?
    public var count: Int
}

/// One evaluation batch's loss sum and correct predictions (see `Trainer.evaluateBatches`).
public struct BatchEvaluation: Equatable, Sendable {
    public var lossSum: Double = 0
    public var correct: Int = 0
    public init(lossSum: Double = 0, correct: Int = 0) { self.lossSum = lossSum; self.correct = correct }

    /// As two int64 cells — the loss sum's bits, the count — for an exact allreduce in which only
    /// the rank that evaluated the batch adds anything but zero.
    public var cells: [Int64] { [Int64(bitPattern: lossSum.bitPattern), Int64(correct)] }
    public init(cells: ArraySlice<Int64>) {
        lossSum = Double(bitPattern: UInt64(bitPattern: cells[cells.startIndex]))
        correct = Int(cells[cells.startIndex + 1])
    }
}

extension Evaluation {
    /// The evaluation of `set` from its batches' results, added in batch order.
    public init(batches: [BatchEvaluation], of set: Dataset) {
        var total = 0.0, correct = 0
        for b in batches { total += b.lossSum; correct += b.correct }
        let isClassification = if case .classes = set.targets { true } else { false }
        self.init(loss: total / Double(max(set.count, 1)),
                  accuracy: isClassification ? Double(correct) / Double(max(set.count, 1)) : nil, count: set.count)
    }
}

/// What one optimiser step did.
public struct StepReport: Sendable {
    public var epoch: Int
    public var stepInEpoch: Int
    public var globalStep: Int
    public var learningRate: Float
    /// Mean loss over this rank's rows of the batch.
    public var loss: Double
    public var correct: Int
    public var rows: Int
    /// True when this step finished an epoch.
    public var endedEpoch: Bool
    /// When `endedEpoch`: the epoch's summed loss, rows and correct predictions (this rank's).
    public var epochLossSum: Double = 0
    public var epochRows: Int = 0
    public var epochCorrect: Int = 0
}

/// Settings of a training run.
public struct TrainingSettings: Codable, Equatable, Sendable {
    public var epochs: Int
    /// Global batch size (split across the ranks of a data-parallel group).
    public var batchSize: Int
    public var optimizer: OptimizerConfig
    public var schedule: LearningRateSchedule
    /// Clip the global gradient norm to this value; 0 disables clipping.
    public var clipNorm: Float
    /// Report training metrics every this many steps.
    public var logEvery: Int
    /// How a data-parallel group sums gradients (see `Reduction`).
    public var reduction: Reduction
    /// With `.exact`: rows per micro-batch, the unit of work whose gradient is the same on any
    /// rank (default 64).
    public var microBatch: Int
    /// Data-parallel `fast` reduction without clipping: each rank updates only its shard of the
    /// parameters and keeps only that shard of the optimiser's moments current (ZeRO stage 1),
    /// so the update's cost is split over the ranks instead of repeated on each. Same bits as
    /// unsharded. The whole state is gathered at the end of every epoch, every
    /// `Trainer.wholeStateInterval` steps and before a step-based checkpoint; a group that
    /// loses a rank goes back to the last whole state (see `Trainer.rollBackToWholeState`).
    /// Default on.
    public var shardOptimizer: Bool

    /// How gradients are summed across the ranks of a group.
    public enum Reduction: String, Codable, Sendable {
        /// float32 ring allreduce: bitwise repeatable for a given number of ranks; a different
        /// number of ranks adds in a different order (last-bit differences).
        case fast
        /// Each rank computes the gradients of fixed micro-batches (micro-batch j on rank
        /// j mod world), sums them exactly in fixed point and the group adds the sums as int64:
        /// the same weights, bit for bit, for 1, 2, 3 or 4 ranks (see `FixedPointSum`).
        case exact
    }

    public init(epochs: Int = 10, batchSize: Int = 128, optimizer: OptimizerConfig = OptimizerConfig(),
                schedule: LearningRateSchedule = LearningRateSchedule(), clipNorm: Float = 0, logEvery: Int = 100,
                reduction: Reduction = .fast, microBatch: Int = 64, shardOptimizer: Bool = true) {
        self.epochs = epochs; self.batchSize = batchSize; self.optimizer = optimizer; self.schedule = schedule
        self.clipNorm = clipNorm; self.logEvery = logEvery; self.reduction = reduction; self.microBatch = microBatch
        self.shardOptimizer = shardOptimizer
    }

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", optimizer, schedule, clipNorm = "clip_norm", logEvery = "log_every", reduction
        case microBatch = "micro_batch", shardOptimizer = "shard_optimizer"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingSettings()
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        optimizer = try c.decodeIfPresent(OptimizerConfig.self, forKey: .optimizer) ?? d.optimizer
        schedule = try c.decodeIfPresent(LearningRateSchedule.self, forKey: .schedule) ?? d.schedule
        clipNorm = try c.decodeIfPresent(Float.self, forKey: .clipNorm) ?? d.clipNorm
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery) ?? d.logEvery
        reduction = try c.decodeIfPresent(Reduction.self, forKey: .reduction) ?? d.reduction
        microBatch = try c.decodeIfPresent(Int.self, forKey: .microBatch) ?? d.microBatch
        shardOptimizer = try c.decodeIfPresent(Bool.self, forKey: .shardOptimizer) ?? d.shardOptimizer
    }

    public func validate() throws(TrainError) {
        guard epochs >= 1 else { throw .invalidConfig("training.epochs must be >= 1 (got \(epochs))") }
        guard batchSize >= 1 else { throw .invalidConfig("training.batch_size must be >= 1 (got \(batchSize))") }
        guard clipNorm >= 0 else { throw .invalidConfig("training.clip_norm must be >= 0") }
        guard logEvery >= 1 else { throw .invalidConfig("training.log_every must be >= 1") }
        if reduction == .exact {
            guard microBatch >= 1, microBatch <= batchSize, batchSize % microBatch == 0 else {
                throw .invalidConfig("training.micro_batch must divide training.batch_size \(batchSize) (got \(microBatch)) with reduction: exact")
            }
        }
        try optimizer.validate()
    }
}

/// Reduces gradients across the ranks of a data-parallel group. The default does nothing
/// (one rank). It receives this rank's gradient, already divided by the global batch size,
/// and must leave the group's sum in place.
public protocol GradientReducer: AnyObject {
    func reduce(_ gradients: FloatBuffer) throws
    /// Where the next step should compute its gradients so that `reduce` sends them from
    /// where they lie (a ring's shared-memory window), or nil for the network's own buffer.
    func gradientStorage(count: Int) -> FloatBuffer?
    /// Adds the ranks' fixed-point sums exactly (`reduction: exact`).
    func reduceExact(_ sums: FixedPointSum) throws
    /// Sums a few totals (an epoch's loss sum, rows, correct predictions) across the group.
    func reduceTotals(_ totals: FloatBuffer) throws
    /// Adds int64 cells across the group, wrapping: exact in any order (a sharded evaluation's
    /// results, each cell filled by one rank and zero on the others).
    func reduceCells(_ cells: UnsafeMutableBufferPointer<Int64>) throws
    /// For a sharded optimiser: the elements of a `count`-element buffer this rank holds summed
    /// after `reduceScatter` and hands out in `allGather`, or nil when the reducer cannot split
    /// its reduction (one rank).
    func shard(count: Int) -> Range<Int>?
    /// The first half of `reduce`: afterwards only this rank's `shard(count:)` of `gradients`
    /// holds the group's sum (with the bits `reduce` gives it).
    func reduceScatter(_ gradients: FloatBuffer) throws
    /// Every rank's `shard(count:)` of `values` to every rank.
    func allGather(_ values: FloatBuffer) throws
    /// Seconds spent reducing so far (communication plus waiting for the slowest rank).
    var communicationSeconds: Double { get }
    /// Seconds spent waiting for the previous rank's first frame (how late it came).
    var waitSeconds: Double { get }
}

extension GradientReducer {
    public func gradientStorage(count: Int) -> FloatBuffer? { nil }
    public func reduceTotals(_ totals: FloatBuffer) throws { try reduce(totals) }
    public func shard(count: Int) -> Range<Int>? { nil }
    public func reduceScatter(_ gradients: FloatBuffer) throws { try reduce(gradients) }
    public func allGather(_ values: FloatBuffer) throws {}
    public var communicationSeconds: Double { 0 }
    public var waitSeconds: Double { 0 }
}

/// The reducer of a single-rank run.
public final class LocalReducer: GradientReducer {
    public init() {}
    public func reduce(_ gradients: FloatBuffer) throws {}
    public func reduceExact(_ sums: FixedPointSum) throws {}
    public func reduceCells(_ cells: UnsafeMutableBufferPointer<Int64>) throws {}
}

/// Trains a network on a data set, step by step, deterministically: the same seed gives the
/// same parameters bit for bit, and `checkpoint()`/`restore(_:)` continue exactly.
///
/// As rank `rank` of `world`, it trains on its fixed slice of every global batch.
/// Not thread-safe: one task drives a trainer.
public final class Trainer {
    public let network: Network
    public let loss: Loss
    public let optimizer: Optimizer
    public let settings: TrainingSettings
    public let data: Dataset
    public let seed: UInt64
    public private(set) var rank: Int
    public private(set) var world: Int

    public private(set) var epoch = 0
    public private(set) var stepInEpoch = 0
    public private(set) var globalStep = 0
    /// Running totals of the current epoch; part of a checkpoint, so an epoch's metrics are the
    /// same whether or not it was interrupted (one process; a group resumed mid-epoch reports
    /// that epoch over rank 0's rows before the checkpoint and every rank's after it).
    private var epochLossSum = 0.0
    private var epochRows = 0
    private var epochCorrect = 0
    private var dropoutRNG: Xoshiro256
    private var order: [Int] = []
    private var orderEpoch = -1

    /// Sharded optimiser (`TrainingSettings.shardOptimizer`): whether the moments outside this
    /// rank's shard went stale since the last whole state, and that state (`checkpoint()`).
    private var statePartial = false
    private var wholeState: Checkpoint?
    /// Steps between gathers of a sharded optimiser's whole state: how far a group that lost a
    /// rank goes back at most (fewer at the end of an epoch). Each gather is two all-gathers.
    public static let wholeStateInterval = 100

    /// `reduction: exact`: this rank's micro-batch gradients, summed in fixed point.
    private let exactSums: FixedPointSum?
    private let batchX: FloatBuffer
    private let batchLabels: UnsafeMutablePointer<Int32>
    private let batchValues: FloatBuffer
    private let dOutput: FloatBuffer

    public init(network: Network, loss: Loss, settings: TrainingSettings, data: Dataset, seed: UInt64,
                rank: Int = 0, world: Int = 1) throws(TrainError) {
        try settings.validate()
        guard data.featureCount == network.inputCount else {
            throw .invalidModel("the model takes \(network.inputCount) inputs, data set \(data.name) has \(data.featureCount) features")
        }
        guard data.outputCount == network.outputCount else {
            throw .invalidModel("the model has \(network.outputCount) outputs, data set \(data.name) needs \(data.outputCount)")
        }
        switch (loss, data.targets) {
        case (.softmaxCrossEntropy, .classes), (.meanSquaredError, .values): break
        default: throw .invalidModel("loss \(loss.rawValue) does not fit the targets of \(data.name)")
        }
        self.network = network
        self.loss = loss
        self.settings = settings
        self.data = data
        self.seed = seed
        self.rank = rank
        self.world = world
        optimizer = Optimizer(settings.optimizer, parameterCount: network.parameterCount)
        dropoutRNG = Xoshiro256(seed: Seed.derive(seed, Seed.label("dropout"), UInt64(rank)))
        network.initialize(seed: Seed.derive(seed, Seed.label("init")))
        let rows = settings.batchSize
        exactSums = settings.reduction == .exact
            ? FixedPointSum(count: network.parameterCount, maxContributions: settings.batchSize / settings.microBatch) : nil
        batchX = FloatBuffer(count: rows * data.featureCount)
        batchLabels = .allocate(capacity: rows)
        batchValues = FloatBuffer(count: rows * data.outputCount)
        dOutput = FloatBuffer(count: rows * network.outputCount)
    }

    deinit { batchLabels.deallocate() }

    public var stepsPerEpoch: Int { Permutation.stepsPerEpoch(count: data.count, globalBatch: settings.batchSize) }
    public var totalSteps: Int { stepsPerEpoch * settings.epochs }
    public var isFinished: Bool { epoch >= settings.epochs }

    /// Runs the next optimiser step; `reducer` combines gradients across a group.
    public func step(reducer: any GradientReducer) throws -> StepReport {
        precondition(!isFinished, "training already finished")
        if orderEpoch != epoch {
            order = Permutation.epochOrder(count: data.count, seed: seed, epoch: epoch)
            orderEpoch = epoch
        }
        let globalRows = min(settings.batchSize, data.count - stepInEpoch * settings.batchSize)
        let (sum, correct, n): (Double, Int, Int)
        var shard: Range<Int>? // this rank's part of a sharded update
        if let exactSums {
            (sum, correct, n) = try exactStep(globalRows: globalRows, sums: exactSums)
            try reducer.reduceExact(exactSums)
            exactSums.write(into: network.gradients.pointer)
        } else {
            shard = world > 1 && settings.shardOptimizer && settings.clipNorm == 0 ? reducer.shard(count: network.parameterCount) : nil
            if shard != nil && !statePartial { saveWholeState() }
            network.useGradientStorage(reducer.gradientStorage(count: network.parameterCount))
            if world > 1 {
                // A rank's dropout stream is a function of (rank, step): a group resumed from a
                // checkpoint (rank 0's, restored on every rank) draws the masks it would have.
                dropoutRNG = groupDropoutStream()
            }
            let rows = Permutation.shard(of: order, step: stepInEpoch, globalBatch: settings.batchSize, rank: rank, world: world)
            gather(rows)
            n = rows.count
            let out = network.forward(batchX.pointer, batch: n, training: true, rng: &dropoutRNG)
            (sum, correct) = loss.evaluate(out, batch: n, width: network.outputCount, targets: targets(), grad: dOutput.pointer,
                                           normalizer: Float(globalRows))
            if n > 0 {
                network.backward(batchX.pointer, batch: n, dOutput: dOutput.pointer)
            } else {
                network.gradients.fill(0)
            }
            if shard != nil { try reducer.reduceScatter(network.gradients) } else { try reducer.reduce(network.gradients) }
        }
        if settings.clipNorm > 0 { Optimizer.clip(network.gradients, maxNorm: settings.clipNorm) }
        let lr = settings.schedule.rate(at: globalStep, base: settings.optimizer.learningRate, totalSteps: totalSteps)
        if let shard {
            statePartial = true
            optimizer.update(parameters: network.parameters, gradients: network.gradients, lr: lr, range: shard)
            try reducer.allGather(network.parameters)
            if stepInEpoch + 1 == stepsPerEpoch || (globalStep + 1) % Self.wholeStateInterval == 0 {
                try completeState(reducer: reducer)
            }
        } else {
            optimizer.update(parameters: network.parameters, gradients: network.gradients, lr: lr)
        }
        epochLossSum += sum
        epochRows += n
        epochCorrect += correct
        var report = StepReport(epoch: epoch, stepInEpoch: stepInEpoch, globalStep: globalStep, learningRate: lr,
                                loss: n > 0 ? sum / Double(n) : 0, correct: correct, rows: n, endedEpoch: stepInEpoch + 1 == stepsPerEpoch)
        globalStep += 1
        stepInEpoch += 1
        if stepInEpoch == stepsPerEpoch {
            report.epochLossSum = epochLossSum; report.epochRows = epochRows; report.epochCorrect = epochCorrect
            epochLossSum = 0; epochRows = 0; epochCorrect = 0
            stepInEpoch = 0
            epoch += 1
        }
        return report
    }

    /// This rank's share of a step with `reduction: exact`: the global batch is cut into
    /// micro-batches of `microBatch` rows (the last may be shorter), micro-batch j goes to rank
    /// j mod world, and each one's gradient — computed alone, with its own dropout stream, so
    /// it is the same on whichever rank computes it — is added to `sums` exactly. Returns the
    /// loss sum, correct predictions and rows of this rank's micro-batches.
    private func exactStep(globalRows: Int, sums: FixedPointSum) throws -> (Double, Int, Int) {
        sums.reset()
        let m = settings.microBatch, start = stepInEpoch * settings.batchSize
        var lossSum = 0.0, correct = 0, rows = 0
        for j in stride(from: rank, to: (globalRows + m - 1) / m, by: world) {
            let slice = order[(start + j * m)..<(start + min((j + 1) * m, globalRows))]
            gather(slice)
            var rng = Xoshiro256(seed: Seed.derive(seed, Seed.label("dropout"), UInt64(globalStep), UInt64(j)))
            let out = network.forward(batchX.pointer, batch: slice.count, training: true, rng: &rng)
            let (s, c) = loss.evaluate(out, batch: slice.count, width: network.outputCount, targets: targets(), grad: dOutput.pointer,
                                       normalizer: Float(globalRows))
            network.backward(batchX.pointer, batch: slice.count, dOutput: dOutput.pointer)
            let outside = sums.add(network.gradients.pointer)
            guard outside == 0 else {
                throw TrainError.diverged(step: globalStep, reason: "\(outside) gradient values are not finite or exceed the exact reduction's range (|g| < \(sums.limit)); lower the learning rate or use reduction: fast")
            }
            lossSum += s; correct += c; rows += slice.count
        }
        return (lossSum, correct, rows)
    }

    /// Single-rank convenience.
    public func step() throws -> StepReport {
        try step(reducer: LocalReducer())
    }

    private func gather(_ rows: ArraySlice<Int>) {
        let d = data.featureCount
        data.features.withUnsafeBufferPointer { f in
            for (k, i) in rows.enumerated() { (batchX.pointer + k * d).update(from: f.baseAddress! + i * d, count: d) }
        }
        switch data.targets {
        case let .classes(labels, _):
            for (k, i) in rows.enumerated() { batchLabels[k] = labels[i] }
        case let .values(v, w):
            v.withUnsafeBufferPointer { vp in
                for (k, i) in rows.enumerated() { (batchValues.pointer + k * w).update(from: vp.baseAddress! + i * w, count: w) }
            }
        }
    }

    private func targets() -> Loss.Targets {
        switch data.targets {
        case .classes: .classes(batchLabels)
        case .values: .values(batchValues.pointer)
        }
    }

    /// Loss and accuracy of the current parameters on `set` (no dropout), in batches.
    public func evaluate(_ set: Dataset, batchSize: Int = 1000) -> Evaluation {
        Evaluation(batches: evaluateBatches(set, batchSize: batchSize), of: set)
    }

    /// The loss sum and correct predictions of each batch of `batchSize` rows of `set`, in
    /// order. With `shards` > 1 only batches b with b mod `shards` = `shard` are evaluated, the
    /// others stay zero: a group's ranks each take their share and add the results cell by cell,
    /// and since every batch is computed whole by one rank, `Evaluation(batches:of:)` then gives
    /// the same bits as one process evaluating everything.
    public func evaluateBatches(_ set: Dataset, batchSize: Int = 1000, shard: Int = 0, of shards: Int = 1) -> [BatchEvaluation] {
        precondition(batchSize >= 1 && shards >= 1 && shard >= 0 && shard < shards)
        var rng = Xoshiro256(seed: 0)
        let d = set.featureCount
        let batches = (set.count + batchSize - 1) / batchSize
        var results = [BatchEvaluation](repeating: BatchEvaluation(), count: batches)
        set.features.withUnsafeBufferPointer { f in
            for b in stride(from: shard, to: batches, by: shards) {
                let start = b * batchSize
                let n = min(batchSize, set.count - start)
                let out = network.forward(f.baseAddress! + start * d, batch: n, training: false, rng: &rng)
                let r: (loss: Double, correct: Int)
                switch set.targets {
                case let .classes(labels, _):
                    r = labels.withUnsafeBufferPointer {
                        loss.evaluate(out, batch: n, width: network.outputCount, targets: .classes($0.baseAddress! + start), grad: nil, normalizer: 1)
                    }
                case let .values(v, w):
                    r = v.withUnsafeBufferPointer {
                        loss.evaluate(out, batch: n, width: network.outputCount, targets: .values($0.baseAddress! + start * w), grad: nil, normalizer: 1)
                    }
                }
                results[b] = BatchEvaluation(lossSum: r.loss, correct: r.correct)
            }
        }
        return results
    }

    /// This rank's dropout stream from the current step on in a group: a function of (rank,
    /// step, world) alone, so any rank holding any rank's checkpoint draws the same masks.
    private func groupDropoutStream() -> Xoshiro256 {
        Xoshiro256(seed: Seed.derive(seed, Seed.label("dropout"), UInt64(rank), UInt64(globalStep), UInt64(world)))
    }

    /// Continues as rank `rank` of a re-formed group of `world` (after a rank was lost): later
    /// steps split each global batch over the new group. Call after every rank restored the same
    /// state. The epoch's running totals stay with rank 0 only, so the group's sum does not
    /// count them twice (the lost rank's share of the interrupted epoch is gone).
    public func regroup(rank: Int, world: Int) {
        precondition(world >= 1 && rank >= 0 && rank < world)
        self.rank = rank
        self.world = world
        dropoutRNG = groupDropoutStream()
        if rank != 0 { epochLossSum = 0; epochRows = 0; epochCorrect = 0 }
    }

    /// The whole training state: the current one, or with a sharded optimiser whose moments
    /// were not gathered since, the last whole state (see `wholeStateStep`).
    public func checkpoint() -> Checkpoint {
        if statePartial, let wholeState { return wholeState }
        return currentState()
    }

    /// The global step `checkpoint()` stands at.
    public var wholeStateStep: Int { statePartial ? wholeState?.globalStep ?? globalStep : globalStep }

    /// Sharded optimiser: gathers every rank's shard of the moments, so every rank holds the
    /// whole training state again. A collective: every rank of the group calls it at the same
    /// step. Nothing to do (and no collective) when the state is whole.
    public func completeState(reducer: any GradientReducer) throws {
        guard statePartial else { return }
        for moments in [optimizer.first, optimizer.second] where moments.count > 0 { try reducer.allGather(moments) }
        statePartial = false
    }

    /// Goes back to the last whole state, keeping this rank's own epoch totals: after the
    /// group lost a rank, whose shard of the moments is gone. The steps since are trained again.
    public func rollBackToWholeState() throws(TrainError) {
        guard statePartial, let s = wholeState else { return }
        try restore(s, path: "the last whole training state")
        epochLossSum = s.epochLossSum; epochRows = s.epochRows; epochCorrect = s.epochCorrect
    }

    /// Keeps the current (whole) state before a sharded update makes it partial, copying into
    /// the buffers of the last one kept: no allocation.
    private func saveWholeState() {
        guard var s = wholeState else { wholeState = currentState(); return }
        wholeState = nil // `s` holds the only reference: its arrays are written in place
        s.epoch = epoch; s.stepInEpoch = stepInEpoch; s.globalStep = globalStep; s.optimizerStep = optimizer.step
        s.epochLossSum = epochLossSum; s.epochRows = epochRows; s.epochCorrect = epochCorrect; s.dropoutRNG = dropoutRNG.state
        for (array, buffer) in [(\Checkpoint.parameters, network.parameters), (\.firstMoment, optimizer.first), (\.secondMoment, optimizer.second)] {
            s[keyPath: array].withUnsafeMutableBufferPointer { $0.baseAddress?.update(from: buffer.pointer, count: $0.count) }
        }
        wholeState = s
    }

    private func currentState() -> Checkpoint {
        Checkpoint(layers: network.layers, loss: loss, optimizerKind: settings.optimizer.kind, epoch: epoch,
                   stepInEpoch: stepInEpoch, globalStep: globalStep, optimizerStep: optimizer.step,
                   epochLossSum: epochLossSum, epochRows: epochRows, epochCorrect: epochCorrect,
                   dropoutRNG: dropoutRNG.state, parameters: network.parameters.array,
                   firstMoment: optimizer.first.array, secondMoment: optimizer.second.array)
    }

    /// Continues from `c`; it must be for the same model, loss and optimiser.
    public func restore(_ c: Checkpoint, path: String = "checkpoint") throws(TrainError) {
        func fail(_ r: String) -> TrainError { .checkpoint(path: path, reason: r) }
        guard c.layers == network.layers else { throw fail("it is for model \(c.layers), not \(network.layers)") }
        guard c.loss == loss else { throw fail("it is for loss \(c.loss.rawValue), not \(loss.rawValue)") }
        guard c.optimizerKind == settings.optimizer.kind else { throw fail("it is for optimizer \(c.optimizerKind.rawValue), not \(settings.optimizer.kind.rawValue)") }
        guard c.parameters.count == network.parameterCount, c.firstMoment.count == optimizer.first.count,
              c.secondMoment.count == optimizer.second.count else { throw fail("buffer sizes do not match the model") }
        guard let rng = Xoshiro256(state: c.dropoutRNG) else { throw fail("invalid RNG state") }
        guard c.stepInEpoch < stepsPerEpoch else { throw fail("step \(c.stepInEpoch) is past the end of an epoch of \(stepsPerEpoch) steps") }
        statePartial = false
        network.parameters.copy(from: FloatBuffer(c.parameters))
        optimizer.first.copy(from: FloatBuffer(c.firstMoment))
        optimizer.second.copy(from: FloatBuffer(c.secondMoment))
        optimizer.step = c.optimizerStep
        dropoutRNG = rng
        epoch = c.epoch
        stepInEpoch = c.stepInEpoch
        globalStep = c.globalStep
        // A group's checkpoint is rank 0's: its running totals are rank 0's share alone, so the
        // other ranks start the epoch's totals afresh (as after `regroup`), not count it twice.
        epochLossSum = rank == 0 ? c.epochLossSum : 0
        epochRows = rank == 0 ? c.epochRows : 0
        epochCorrect = rank == 0 ? c.epochCorrect : 0
    }
}
