#if canImport(Glibc)
import Glibc
#endif

/// How one parameter is drawn.
public enum Distribution: Equatable, Sendable {
    /// Always this value.
    case fixed(ParameterValue)
    /// One of these (a grid axis).
    case choice([ParameterValue])
    case uniform(low: Double, high: Double)
    /// log-uniform on [low, high], both > 0.
    case logUniform(low: Double, high: Double)
    /// An integer in [low, high], inclusive.
    case intUniform(low: Int, high: Int)
    /// uniform on [low, high], rounded to a multiple of q.
    case quantizedUniform(low: Double, high: Double, q: Double)

    /// Whether grid search can enumerate it.
    public var isEnumerable: Bool {
        switch self {
        case .fixed, .choice: true
        default: false
        }
    }
}

/// An ordered search space: parameter names with their distributions.
public struct SearchSpace: Equatable, Sendable {
    public var parameters: [(name: String, distribution: Distribution)]
    public init(_ parameters: [(name: String, distribution: Distribution)]) { self.parameters = parameters }
    public var names: [String] { parameters.map(\.name) }

    public static func == (a: SearchSpace, b: SearchSpace) -> Bool {
        a.parameters.count == b.parameters.count && zip(a.parameters, b.parameters).allSatisfy { $0.name == $1.name && $0.distribution == $1.distribution }
    }
}
