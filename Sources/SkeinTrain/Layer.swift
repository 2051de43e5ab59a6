/// One layer of a feed-forward network.
public enum Layer: Equatable, Sendable, Codable, CustomStringConvertible {
    /// y = x·W + b, with W stored inputs×outputs (row-major) so a batch is one sgemm.
    case dense(inputs: Int, outputs: Int)
    case relu
    case tanh
    /// GELU, tanh approximation (Hendrycks & Gimpel, 2016).
    case gelu
    /// Inverted dropout: at training time zeroes each unit with probability `rate` and scales
    /// the rest by 1/(1-rate); the identity at evaluation.
    case dropout(rate: Float)

    public var description: String {
        switch self {
        case let .dense(i, o): "dense(\(i)→\(o))"
        case .relu: "relu"
        case .tanh: "tanh"
        case .gelu: "gelu"
        case let .dropout(r): "dropout(\(r))"
        }
    }

    /// Parameters this layer owns in the flat buffer.
    var parameterCount: Int {
        if case let .dense(i, o) = self { return i * o + o }
        return 0
    }
}

/// Activation functions, applied element-wise over raw buffers (loops the compiler vectorises).
enum Activation {
    static let geluC: Float = 0.7978845608 // sqrt(2/π)

    @inline(__always)
    static func forward(_ layer: Layer, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch layer {
        case .relu:
            Vectorized.relu(x, y, count: n)
        case .tanh:
            for i in 0..<n { y[i] = Float.tanhApprox(x[i]) }
        case .gelu:
            for i in 0..<n {
                let v = x[i]
                let t = Float.tanhApprox(geluC * (v + 0.044715 * v * v * v))
                y[i] = 0.5 * v * (1 + t)
            }
        default:
            preconditionFailure("not an activation: \(layer)")
        }
    }

    /// dx = dy ⊙ f'(x); `y` is the forward output (used by tanh).
    @inline(__always)
    static func backward(_ layer: Layer, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                         _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        switch layer {
        case .relu:
            Vectorized.reluBackward(x, dy, dx, count: n)
        case .tanh:
            for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
        case .gelu:
            for i in 0..<n {
                let v = x[i]
                let u = geluC * (v + 0.044715 * v * v * v)
                let t = Float.tanhApprox(u)
                let du = geluC * (1 + 3 * 0.044715 * v * v)
                dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
            }
        default:
            preconditionFailure("not an activation: \(layer)")
        }
    }
}

extension Float {
    /// tanh through libm; named so a faster approximation can replace it in one place.
    @inline(__always)
    static func tanhApprox(_ x: Float) -> Float { tanhf(x) }
}

import SkeinTensor

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
