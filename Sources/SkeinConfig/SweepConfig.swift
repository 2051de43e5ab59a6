import Foundation
import SkeinSearch
import SkeinTrain
import Yams

/// A sweep, as read from its YAML file and validated.
public struct SweepConfig: Equatable, Sendable {
    public struct Objective: Equatable, Sendable {
        public var metric: String
        public var maximize: Bool
    }
    public struct Budget: Equatable, Sendable {
        /// Trials to run in all (grid: at most the grid's size); nil = the grid's size.
        public var maxTrials: Int?
        /// Trials of this sweep running at once; nil = as many as there are slots.
        public var maxConcurrent: Int?
        /// No new trial starts after this many seconds; running ones finish.
        public var maxDurationSeconds: Double?
    }
    public enum Method: String, Sendable { case grid, random }

    public var name: String
    public var seed: UInt64
    public var objective: Objective
    public var budget: Budget
    /// Extra attempts after a failure (0 = none).
    public var retries: Int
    public var trial: TrialSpec
    public var method: Method
    public var space: SearchSpace

    /// The searcher this config describes.
    public func makeSearcher() throws(SearchError) -> any Searcher {
        switch method {
        case .grid: try GridSearcher(space: space)
        case .random: try RandomSearcher(space: space, seed: seed)
        }
    }

    /// Trials the sweep will run: the budget, capped by the grid's size.
    public var totalTrials: Int {
        let cap = (try? makeSearcher().capacity) ?? nil
        switch (budget.maxTrials, cap) {
        case let (m?, c?): return min(m, c)
        case let (m?, nil): return m
        case let (nil, c?): return c
        case (nil, nil): return 0
        }
    }
}

extension SweepConfig {
    /// Parses and validates a sweep config, reporting every problem with file, line and field.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> SweepConfig {
        let root = try YAMLConfig.compose(yaml: yaml, file: file)
        var r = NodeReader(file: file)
        let config = r.sweep(root)
        if !r.problems.isEmpty { throw ConfigError(r.problems) }
        return config!
    }

    public static func load(path: String) throws(ConfigError) -> (SweepConfig, text: String) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError([ConfigProblem(file: path, field: "", message: "cannot read the file")])
        }
        return (try parse(yaml: text, file: path), text)
    }
}

/// Walks the YAML tree, collecting every problem instead of stopping at the first.
struct NodeReader {
    let file: String
    var problems: [ConfigProblem] = []

    mutating func problem(_ node: Node?, _ path: [String], _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark?.line, column: node?.mark?.column,
                                      field: YAMLConfig.fieldPath(path), message: message))
    }

    mutating func mapping(_ node: Node, _ path: [String], allowed: Set<String>) -> Node.Mapping? {
        guard let m = node.mapping else {
            problem(node, path, "expected a mapping")
            return nil
        }
        for (k, _) in m {
            guard let key = k.string else { problem(k, path, "keys must be text"); continue }
            if !allowed.contains(key) {
                problem(k, path + [key], "unknown field (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return m
    }

    mutating func string(_ node: Node?, _ path: [String], required: Bool = true) -> String? {
        guard let node else { if required { problem(nil, path, "required field is missing") }; return nil }
        guard let s = node.scalar?.string, node.scalar != nil else { problem(node, path, "expected text"); return nil }
        return s
    }

    mutating func int(_ node: Node?, _ path: [String], min: Int = .min) -> Int? {
        guard let node else { return nil }
        guard let v = node.int else { problem(node, path, "expected an integer, found '\(node.scalar?.string ?? "a collection")'"); return nil }
        if v < min { problem(node, path, "must be >= \(min) (got \(v))"); return nil }
        return v
    }

    mutating func double(_ node: Node?, _ path: [String]) -> Double? {
        guard let node else { return nil }
        guard let v = node.float ?? node.int.map(Double.init) else {
            problem(node, path, "expected a number, found '\(node.scalar?.string ?? "a collection")'")
            return nil
        }
        return v
    }

    /// "90", "90s", "30m", "2h" → seconds.
    mutating func duration(_ node: Node?, _ path: [String]) -> Double? {
        guard let node else { return nil }
        if let v = node.float ?? node.int.map(Double.init) { return v }
        guard let s = node.scalar?.string, let unit = s.last, let n = Double(s.dropLast()), n >= 0 else {
            problem(node, path, "expected a duration such as 90s, 30m or 2h"); return nil
        }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        default: problem(node, path, "expected a duration such as 90s, 30m or 2h"); return nil
        }
    }

    func value(_ node: Node) -> ParameterValue? {
        switch node {
        case let .scalar(s):
            if let b = node.bool, ["true", "false", "yes", "no"].contains(s.string.lowercased()) { return .bool(b) }
            if let i = node.int { return .int(i) }
            if let d = node.float { return .double(d) }
            return .string(s.string)
        case let .sequence(seq):
            var out: [ParameterValue] = []
            for n in seq { guard let v = value(n) else { return nil }; out.append(v) }
            return .list(out)
        default: return nil
        }
    }

    mutating func sweep(_ root: Node) -> SweepConfig? {
        guard let top = mapping(root, [], allowed: ["name", "seed", "objective", "budget", "retries", "trial", "search"]) else { return nil }
        let name = string(top["name"], ["name"])
        if let n = name, n.isEmpty || n.contains(where: { $0 == "/" || $0.isWhitespace }) {
            problem(top["name"], ["name"], "must be non-empty, without spaces or '/'")
        }
        let seed = int(top["seed"], ["seed"], min: 0) ?? 0

        var objective: SweepConfig.Objective?
        if let o = top["objective"] {
            if let m = mapping(o, ["objective"], allowed: ["metric", "direction"]) {
                let metric = string(m["metric"], ["objective", "metric"])
                var maximize = false
                if let d = string(m["direction"], ["objective", "direction"], required: false) {
                    if d == "maximize" { maximize = true } else if d != "minimize" {
                        problem(m["direction"], ["objective", "direction"], "must be minimize or maximize (got '\(d)')")
                    }
                }
                if let metric { objective = .init(metric: metric, maximize: maximize) }
            }
        } else {
            problem(root, ["objective"], "required field is missing")
        }

        var budget = SweepConfig.Budget()
        if let b = top["budget"], let m = mapping(b, ["budget"], allowed: ["max_trials", "max_concurrent", "max_duration"]) {
            budget.maxTrials = int(m["max_trials"], ["budget", "max_trials"], min: 1)
            budget.maxConcurrent = int(m["max_concurrent"], ["budget", "max_concurrent"], min: 1)
            budget.maxDurationSeconds = duration(m["max_duration"], ["budget", "max_duration"])
        }
        let retries = int(top["retries"], ["retries"], min: 0) ?? 0

        var trial: TrialSpec?
        if let t = top["trial"] { trial = trialSpec(t) } else { problem(root, ["trial"], "required field is missing") }

        var method = SweepConfig.Method.random
        var space = SearchSpace([])
        if let s = top["search"], let m = mapping(s, ["search"], allowed: ["method", "parameters"]) {
            if let raw = string(m["method"], ["search", "method"], required: false) {
                if let mm = SweepConfig.Method(rawValue: raw) { method = mm } else {
                    problem(m["method"], ["search", "method"], "must be grid or random (got '\(raw)')")
                }
            }
            if let p = m["parameters"] { space = parameters(p) ?? space }
        }
        if method == .random && budget.maxTrials == nil && problems.isEmpty {
            problem(top["budget"] ?? root, ["budget", "max_trials"], "random search needs a trial budget")
        }
        if method == .grid {
            for (n, d) in space.parameters where !d.isEnumerable {
                let node = top["search"]?.mapping?["parameters"]?.mapping?[n]
                problem(node, ["search", "parameters", n], "grid search needs 'values' (or a fixed value), not a continuous distribution")
            }
        }
        problems.sort { ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0) }
        guard let name, let objective, var trial, problems.isEmpty else { return nil }
        trial.objective = objective.metric
        return SweepConfig(name: name, seed: UInt64(seed), objective: objective, budget: budget, retries: retries,
                           trial: trial, method: method, space: space)
    }

    mutating func trialSpec(_ node: Node) -> TrialSpec? {
        let path = ["trial"]
        guard let m = mapping(node, path, allowed: ["kind", "train", "command", "env", "timeout", "workers", "peer_timeout", "blas_threads", "checkpoint"]) else { return nil }
        let kindName = string(m["kind"], path + ["kind"]) ?? "builtin"
        guard let kind = TrialSpec.Kind(rawValue: kindName) else {
            problem(m["kind"], path + ["kind"], "must be builtin, command or noop (got '\(kindName)')")
            return nil
        }
        var spec = TrialSpec(kind: kind)
        spec.timeoutSeconds = duration(m["timeout"], path + ["timeout"])
        spec.workers = int(m["workers"], path + ["workers"], min: 1) ?? 1
        if spec.workers > 1 && kind != .builtin {
            // Refused rather than silently run on one worker: only the built-in trainer splits batches.
            problem(m["workers"], path + ["workers"], "data-parallel trials (workers > 1) need kind builtin")
        }
        spec.peerTimeoutSeconds = duration(m["peer_timeout"], path + ["peer_timeout"]) ?? spec.peerTimeoutSeconds
        spec.blasThreads = int(m["blas_threads"], path + ["blas_threads"], min: 1) ?? 1
        if let c = m["checkpoint"], let cm = mapping(c, path + ["checkpoint"], allowed: ["every_steps", "every_seconds"]) {
            spec.checkpointEverySteps = int(cm["every_steps"], path + ["checkpoint", "every_steps"], min: 0) ?? 0
            spec.checkpointEverySeconds = duration(cm["every_seconds"], path + ["checkpoint", "every_seconds"]) ?? 30
        }
        if let env = m["env"] {
            if let em = env.mapping {
                for (k, v) in em {
                    if let key = k.string, let val = v.string { spec.environment[key] = val } else { problem(v, path + ["env"], "expected text keys and values") }
                }
            } else { problem(env, path + ["env"], "expected a mapping") }
        }
        switch kind {
        case .builtin:
            guard let t = m["train"] else { problem(node, path + ["train"], "required for kind builtin"); return nil }
            do {
                let cfg = try YAMLDecoder().decode(TrainConfig.self, from: t)
                try cfg.validate()
                spec.train = cfg
            } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.dataCorrupted(ctx), let DecodingError.valueNotFound(_, ctx) {
                let keys = ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
                let at = YAMLConfig.node(at: keys, in: t) ?? t
                problem(at, path + ["train"] + keys, YAMLConfig.cleaned(ctx.debugDescription, found: ""))
            } catch let e as TrainError {
                problem(t, path + ["train"], e.description)
            } catch {
                problem(t, path + ["train"], "\(error)")
            }
        case .command:
            guard let c = m["command"] else { problem(node, path + ["command"], "required for kind command"); return nil }
            guard let seq = c.sequence, !seq.isEmpty else {
                problem(c, path + ["command"], "expected a list of arguments, e.g. [python3, train.py, --lr, \"{lr}\"] (never a shell string)")
                return nil
            }
            var argv: [String] = []
            for (i, a) in seq.enumerated() {
                if let s = a.scalar?.string { argv.append(s) } else { problem(a, path + ["command", String(i)], "expected text") }
            }
            spec.command = argv
        case .noop:
            break
        }
        return spec
    }

    mutating func parameters(_ node: Node) -> SearchSpace? {
        let base = ["search", "parameters"]
        guard let m = node.mapping else { problem(node, base, "expected a mapping of parameter names"); return nil }
        var out: [(name: String, distribution: Distribution)] = []
        for (k, v) in m {
            guard let name = k.string else { problem(k, base, "parameter names must be text"); continue }
            let path = base + [name]
            // A plain value (or list) is a fixed parameter.
            guard let spec = v.mapping else {
                if let pv = value(v) { out.append((name, .fixed(pv))) } else { problem(v, path, "invalid value") }
                continue
            }
            guard spec.count == 1, let kind = spec.keys.first?.string, let arg = spec.values.first else {
                problem(v, path, "expected exactly one of: values, uniform, loguniform, int_uniform, quniform, value")
                continue
            }
            let at = path + [kind]
            switch kind {
            case "value":
                if let pv = value(arg) { out.append((name, .fixed(pv))) } else { problem(arg, at, "invalid value") }
            case "values":
                guard let seq = arg.sequence, !seq.isEmpty else { problem(arg, at, "expected a non-empty list"); continue }
                let vs = seq.compactMap(value)
                if vs.count != seq.count { problem(arg, at, "every value must be a number, text, true/false or a list") } else { out.append((name, .choice(vs))) }
            case "uniform", "loguniform", "quniform":
                let want = kind == "quniform" ? 3 : 2
                guard let seq = arg.sequence, seq.count == want else {
                    problem(arg, at, kind == "quniform" ? "expected [low, high, q]" : "expected [low, high]"); continue
                }
                let nums = seq.enumerated().map { double($0.element, at + [String($0.offset)]) }
                guard nums.allSatisfy({ $0 != nil }) else { continue }
                let lo = nums[0]!, hi = nums[1]!
                if lo > hi { problem(arg, at, "low (\(lo)) must not exceed high (\(hi))"); continue }
                if kind == "loguniform" && lo <= 0 { problem(arg, at, "loguniform needs low > 0"); continue }
                if kind == "quniform" && nums[2]! <= 0 { problem(seq[2], at + ["2"], "q must be > 0"); continue }
                out.append((name, kind == "uniform" ? .uniform(low: lo, high: hi)
                            : kind == "loguniform" ? .logUniform(low: lo, high: hi) : .quantizedUniform(low: lo, high: hi, q: nums[2]!)))
            case "int_uniform":
                guard let seq = arg.sequence, seq.count == 2 else { problem(arg, at, "expected [low, high]"); continue }
                guard let lo = int(seq[0], at + ["0"]), let hi = int(seq[1], at + ["1"]) else { continue }
                if lo > hi { problem(arg, at, "low (\(lo)) must not exceed high (\(hi))"); continue }
                out.append((name, .intUniform(low: lo, high: hi)))
            default:
                problem(spec.keys.first, at, "unknown distribution (expected values, uniform, loguniform, int_uniform, quniform or value)")
            }
        }
        return SearchSpace(out)
    }
}
