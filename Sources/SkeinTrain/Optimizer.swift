import SkeinTensor

/// Optimiser settings (plain values, decoded from config).
public struct OptimizerConfig: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case sgd, adam, adamw }
    public var kind: Kind
    public var learningRate: Float
    /// SGD momentum (0 = plain SGD).
    public var momentum: Float
    public var nesterov: Bool
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// L2 penalty added to the gradient (SGD, Adam) or decoupled decay (AdamW, Loshchilov & Hutter 2019).
    public var weightDecay: Float

    public init(kind: Kind = .adam, learningRate: Float = 1e-3, momentum: Float = 0, nesterov: Bool = false,
                beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.kind = kind; self.learningRate = learningRate; self.momentum = momentum; self.nesterov = nesterov
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey {
        case kind = "name", learningRate = "lr", momentum, nesterov, beta1, beta2, epsilon, weightDecay = "weight_decay"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = OptimizerConfig()
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? d.kind
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? d.momentum
        nesterov = try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? d.nesterov
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? d.beta2
        epsilon = try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? d.epsilon
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
    }

    public func validate() throws(TrainError) {
        guard learningRate > 0, learningRate.isFinite else { throw .invalidConfig("optimizer.lr must be > 0 (got \(learningRate))") }
        guard momentum >= 0, momentum < 1 else { throw .invalidConfig("optimizer.momentum must be in [0, 1)") }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1 else { throw .invalidConfig("optimizer.beta1/beta2 must be in [0, 1)") }
        guard weightDecay >= 0 else { throw .invalidConfig("optimizer.weight_decay must be >= 0") }
        if nesterov && (kind != .sgd || momentum == 0) { throw .invalidConfig("optimizer.nesterov needs sgd with momentum > 0") }
    }
}

/// Updates a flat parameter buffer from a flat gradient buffer. Its state (moment buffers and
/// step count) is part of a checkpoint. Not thread-safe; one per training run.
public final class Optimizer {
    public let config: OptimizerConfig
    /// First moment (Adam) or velocity (SGD with momentum).
    public let first: FloatBuffer
    /// Second moment (Adam/AdamW only; empty otherwise).
    public let second: FloatBuffer
    /// Updates applied so far (Adam's bias correction uses it).
    public internal(set) var step: Int = 0

    public init(_ config: OptimizerConfig, parameterCount: Int) {
        self.config = config
        let needsFirst = config.kind != .sgd || config.momentum > 0
        first = FloatBuffer(count: needsFirst ? parameterCount : 0)
        second = FloatBuffer(count: config.kind == .sgd ? 0 : parameterCount)
    }

    /// Applies one update with learning rate `lr` (from the schedule) to the elements in
    /// `range` (all of them by default). Every rule is element-wise, so updating a range gives
    /// those elements the bits a whole update gives them: a data-parallel rank that shards the
    /// optimiser updates only its shard (the moments elsewhere go stale until gathered).
    public func update(parameters p: FloatBuffer, gradients g: FloatBuffer, lr: Float, range: Range<Int>? = nil) {
        precondition(p.count == g.count)
        let range = range ?? 0..<p.count
        precondition(range.lowerBound >= 0 && range.upperBound <= p.count)
        step += 1
        let n = range.count
        let pp = p.pointer + range.lowerBound, gp = g.pointer + range.lowerBound
        let wd = config.weightDecay
        switch config.kind {
        case .sgd:
            let mu = config.momentum
            if mu == 0 {
                for i in 0..<n { pp[i] -= lr * (gp[i] + wd * pp[i]) }
            } else {
                let v = first.pointer + range.lowerBound
                let nesterov = config.nesterov
                for i in 0..<n {
                    let grad = gp[i] + wd * pp[i]
                    v[i] = mu * v[i] + grad
                    pp[i] -= lr * (nesterov ? grad + mu * v[i] : v[i])
                }
            }
        case .adam, .adamw:
            let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon
            let c1 = 1 - Float(pow(Double(b1), Double(step)))
            let c2 = 1 - Float(pow(Double(b2), Double(step)))
            let stepSize = lr / c1
            let invC2 = 1 / c2
            let decoupled = config.kind == .adamw
            let l2: Float = decoupled ? 0 : wd
            let decay: Float = decoupled ? 1 - lr * wd : 1
            Vectorized.adamUpdate(p: pp, g: gp, m: first.pointer + range.lowerBound, v: second.pointer + range.lowerBound, count: n, b1: b1, b2: b2, l2: l2,
                                  decay: decay, stepSize: stepSize, invC2: invC2, eps: eps)
        }
    }

    /// Scales `g` so its global L2 norm is at most `maxNorm`; returns the norm before clipping.
    @discardableResult
    public static func clip(_ g: FloatBuffer, maxNorm: Float) -> Float {
        let norm = BLAS.nrm2(g.count, x: g.pointer)
        if norm > maxNorm && norm > 0 { BLAS.scal(g.count, alpha: maxNorm / norm, x: g.pointer) }
        return norm
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
