import SkeinRandom

/// Decides what to try next. Pure: it sees only trial numbers and (for model-based searchers
/// such as TPE, later) frozen snapshots of finished trials, and returns values.
///
/// Suggestions depend only on the search space, the sweep seed and the trial number, never on
/// which worker asked or when, so the same sweep gives the same trials with any number of
/// workers, and a restarted coordinator suggests exactly what the lost one would have.
public protocol Searcher: Sendable {
    /// Parameters of trial `number` (0-based), or nil once the space is exhausted.
    func suggest(trialNumber number: Int) -> ParameterSet?
    /// How many trials the space holds, if finite (grid), else nil.
    var capacity: Int? { get }
    /// State to persist for an exact restart (stateless searchers return empty bytes).
    func savedState() -> [UInt8]
}

/// Grid search: the cartesian product of every `choice` axis, in declaration order, the last
/// axis varying fastest. Trial k is point k, so every point runs exactly once.
public struct GridSearcher: Searcher {
    public let space: SearchSpace
    private let axes: [[ParameterValue]]

    public init(space: SearchSpace) throws(SearchError) {
        var axes: [[ParameterValue]] = []
        for (name, d) in space.parameters {
            switch d {
            case let .fixed(v): axes.append([v])
            case let .choice(vs):
                guard !vs.isEmpty else { throw .emptyChoice(name) }
                axes.append(vs)
            default: throw .notEnumerable(name)
            }
        }
        self.space = space
        self.axes = axes
    }

    public var capacity: Int? { axes.reduce(1) { $0 * $1.count } }

    public func suggest(trialNumber number: Int) -> ParameterSet? {
        guard number >= 0, number < capacity! else { return nil }
        var rest = number
        var values: [String: ParameterValue] = [:]
        for (i, axis) in axes.enumerated().reversed() {
            values[space.parameters[i].name] = axis[rest % axis.count]
            rest /= axis.count
        }
        return ParameterSet(names: space.names, values: values)
    }

    public func savedState() -> [UInt8] { [] }
}

/// Random search: trial k's parameters come from a generator seeded by (sweep seed, k).
public struct RandomSearcher: Searcher {
    public let space: SearchSpace
    public let seed: UInt64

    public init(space: SearchSpace, seed: UInt64) throws(SearchError) {
        for (name, d) in space.parameters { try Self.check(name, d) }
        self.space = space
        self.seed = seed
    }

    public var capacity: Int? { nil }

    public func suggest(trialNumber number: Int) -> ParameterSet? {
        guard number >= 0 else { return nil }
        var rng = Xoshiro256(seed: Seed.derive(seed, Seed.label("search"), UInt64(number)))
        var values: [String: ParameterValue] = [:]
        for (name, d) in space.parameters {
            // Draw for every parameter in a fixed order, so adding one never shifts the others' streams.
            var stream = Xoshiro256(seed: Seed.derive(rng.next(), Seed.label(name)))
            values[name] = Self.draw(d, &stream)
        }
        return ParameterSet(names: space.names, values: values)
    }

    static func draw(_ d: Distribution, _ rng: inout Xoshiro256) -> ParameterValue {
        switch d {
        case let .fixed(v): return v
        case let .choice(vs): return vs[rng.nextInt(below: vs.count)]
        case let .uniform(lo, hi): return .double(lo + (hi - lo) * rng.nextDouble())
        case let .logUniform(lo, hi): return .double(exp(log(lo) + (log(hi) - log(lo)) * rng.nextDouble()))
        case let .intUniform(lo, hi): return .int(lo + rng.nextInt(below: hi - lo + 1))
        case let .quantizedUniform(lo, hi, q):
            let v = (lo + (hi - lo) * rng.nextDouble()) / q
            return .double(min(max(v.rounded() * q, lo), hi))
        }
    }

    static func check(_ name: String, _ d: Distribution) throws(SearchError) {
        switch d {
        case .fixed: break
        case let .choice(vs): if vs.isEmpty { throw .emptyChoice(name) }
        case let .uniform(lo, hi): if !(lo.isFinite && hi.isFinite && lo <= hi) { throw .badRange(name, "uniform needs low <= high") }
        case let .logUniform(lo, hi): if !(lo > 0 && hi.isFinite && lo <= hi) { throw .badRange(name, "loguniform needs 0 < low <= high") }
        case let .intUniform(lo, hi): if lo > hi { throw .badRange(name, "int_uniform needs low <= high") }
        case let .quantizedUniform(lo, hi, q): if !(lo <= hi && q > 0) { throw .badRange(name, "quniform needs low <= high and q > 0") }
        }
    }

    public func savedState() -> [UInt8] { [] }
}

public enum SearchError: Error, Equatable, Sendable, CustomStringConvertible {
    case notEnumerable(String)
    case emptyChoice(String)
    case badRange(String, String)
    public var description: String {
        switch self {
        case let .notEnumerable(n): "parameter \(n): grid search needs 'values' (or a fixed value), not a continuous distribution"
        case let .emptyChoice(n): "parameter \(n): 'values' is empty"
        case let .badRange(n, why): "parameter \(n): \(why)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
