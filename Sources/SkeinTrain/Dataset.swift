import SkeinRandom

/// Examples in memory: `count` rows of `featureCount` floats, with class labels or float targets.
public struct Dataset: Sendable, Equatable {
    public enum Targets: Sendable, Equatable {
        /// Class index per row, in 0..<classCount.
        case classes([Int32], classCount: Int)
        /// `width` floats per row (regression).
        case values([Float], width: Int)
    }

    public var name: String
    public var features: [Float]
    public var featureCount: Int
    public var targets: Targets

    public init(name: String, features: [Float], featureCount: Int, targets: Targets) {
        precondition(featureCount > 0 && features.count % featureCount == 0)
        self.name = name; self.features = features; self.featureCount = featureCount; self.targets = targets
    }

    public var count: Int { features.count / featureCount }

    /// Output width a model needs: the class count, or the target width.
    public var outputCount: Int {
        switch targets {
        case let .classes(_, k): k
        case let .values(_, w): w
        }
    }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: some Collection<Int>, name: String? = nil) -> Dataset {
        var f = [Float]()
        f.reserveCapacity(indices.count * featureCount)
        for i in indices { f.append(contentsOf: features[i * featureCount..<(i + 1) * featureCount]) }
        let t: Targets
        switch targets {
        case let .classes(labels, k): t = .classes(indices.map { labels[$0] }, classCount: k)
        case let .values(v, w):
            var out = [Float]()
            out.reserveCapacity(indices.count * w)
            for i in indices { out.append(contentsOf: v[i * w..<(i + 1) * w]) }
            t = .values(out, width: w)
        }
        return Dataset(name: name ?? self.name, features: f, featureCount: featureCount, targets: t)
    }

    /// The first `n` rows (for fast tests on a subset).
    public func prefix(_ n: Int) -> Dataset { subset(0..<min(n, count)) }

    /// Splits off a validation set: a seeded permutation, the last `fraction` going to validation.
    public func split(validationFraction fraction: Double, seed: UInt64) -> (train: Dataset, validation: Dataset) {
        let n = count
        let nVal = Int((Double(n) * fraction).rounded())
        var rng = Xoshiro256(seed: Seed.derive(seed, Seed.label("split")))
        let perm = Permutation.shuffled(n, using: &rng)
        return (subset(perm[..<(n - nVal)], name: name + "/train"), subset(perm[(n - nVal)...], name: name + "/validation"))
    }
}

/// Feature scaling fitted on training data and applied unchanged to other splits.
public struct Normalizer: Codable, Equatable, Sendable {
    public var mean: [Float]
    public var inverseStd: [Float]

    /// Per-feature standardisation (zero mean, unit variance) fitted on `data`.
    public static func standardize(fittedOn data: Dataset) -> Normalizer {
        let d = data.featureCount, n = data.count
        var mean = [Double](repeating: 0, count: d), sq = [Double](repeating: 0, count: d)
        data.features.withUnsafeBufferPointer { f in
            for r in 0..<n {
                for j in 0..<d { let v = Double(f[r * d + j]); mean[j] += v; sq[j] += v * v }
            }
        }
        var m = [Float](repeating: 0, count: d), inv = [Float](repeating: 1, count: d)
        for j in 0..<d {
            let mu = mean[j] / Double(max(n, 1))
            let variance = max(sq[j] / Double(max(n, 1)) - mu * mu, 0)
            m[j] = Float(mu)
            inv[j] = variance > 1e-12 ? Float(1 / variance.squareRoot()) : 1
        }
        return Normalizer(mean: m, inverseStd: inv)
    }

    public func apply(to data: inout Dataset) {
        let d = data.featureCount
        precondition(d == mean.count)
        data.features.withUnsafeMutableBufferPointer { f in
            mean.withUnsafeBufferPointer { m in
                inverseStd.withUnsafeBufferPointer { s in
                    for r in 0..<(f.count / d) {
                        for j in 0..<d { f[r * d + j] = (f[r * d + j] - m[j]) * s[j] }
                    }
                }
            }
        }
    }
}

/// Deterministic permutations and the global-batch plan of data-parallel sharding.
public enum Permutation {
    /// Fisher–Yates shuffle of 0..<n.
    public static func shuffled(_ n: Int, using rng: inout Xoshiro256) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, rng.nextInt(below: i + 1)) }
        }
        return p
    }

    /// The order of epoch `epoch`: depends only on the seed and the epoch, so a resumed run
    /// (or another rank) recomputes it instead of storing it.
    public static func epochOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = Xoshiro256(seed: Seed.derive(seed, Seed.label("shuffle"), UInt64(epoch)))
        return shuffled(count, using: &rng)
    }

    /// Rows of global batch `step` that rank `rank` of `world` trains on: a fixed contiguous
    /// slice of the global batch (the last batch may be short; slices then shrink evenly).
    public static func shard(of order: [Int], step: Int, globalBatch: Int, rank: Int, world: Int) -> ArraySlice<Int> {
        let start = step * globalBatch
        let end = min(start + globalBatch, order.count)
        let size = end - start
        let lo = start + size * rank / world
        let hi = start + size * (rank + 1) / world
        return order[lo..<hi]
    }

    /// Number of global batches in an epoch of `count` rows.
    public static func stepsPerEpoch(count: Int, globalBatch: Int) -> Int { (count + globalBatch - 1) / globalBatch }
}
