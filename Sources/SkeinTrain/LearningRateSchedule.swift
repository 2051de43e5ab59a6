#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// How the learning rate changes with the optimiser step. Pure: `rate(at:base:totalSteps:)`.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case constant, step, cosine }
    public var kind: Kind
    /// `step`: multiply by `gamma` every `stepSize` steps.
    public var stepSize: Int
    public var gamma: Float
    /// `cosine`: linear warm-up over `warmupSteps`, then cosine decay to `minRate` at the end.
    public var warmupSteps: Int
    public var minRate: Float

    public init(kind: Kind = .constant, stepSize: Int = 1000, gamma: Float = 0.1, warmupSteps: Int = 0, minRate: Float = 0) {
        self.kind = kind; self.stepSize = stepSize; self.gamma = gamma; self.warmupSteps = warmupSteps; self.minRate = minRate
    }

    enum CodingKeys: String, CodingKey { case kind = "name", stepSize = "step_size", gamma, warmupSteps = "warmup_steps", minRate = "min_lr" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LearningRateSchedule()
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? d.kind
        stepSize = try c.decodeIfPresent(Int.self, forKey: .stepSize) ?? d.stepSize
        gamma = try c.decodeIfPresent(Float.self, forKey: .gamma) ?? d.gamma
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        minRate = try c.decodeIfPresent(Float.self, forKey: .minRate) ?? d.minRate
    }

    /// The rate for 0-based optimiser step `step` of `totalSteps`.
    public func rate(at step: Int, base: Float, totalSteps: Int) -> Float {
        switch kind {
        case .constant:
            return base
        case .step:
            return base * Float(pow(Double(gamma), Double(step / max(stepSize, 1))))
        case .cosine:
            if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
            let span = max(totalSteps - warmupSteps, 1)
            let progress = min(Double(step - warmupSteps) / Double(span), 1)
            return minRate + (base - minRate) * Float(0.5 * (1 + cos(.pi * progress)))
        }
    }
}
