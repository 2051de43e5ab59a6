import Foundation
import SkeinTrain

/// What one trial runs, as sent to workers (JSON in `Assignment.trialSpecJSON`).
public struct TrialSpec: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// The built-in trainer on a `TrainConfig` with the trial's parameters applied.
        case builtin
        /// An external command: an argument vector with `{param}` placeholders, never a shell string.
        case command
        /// Does nothing and reports `objective = sum of numeric parameters`; for tests and benchmarks.
        case noop
    }
    public var kind: Kind
    public var train: TrainConfig?
    public var command: [String]?
    public var environment: [String: String]
    /// Seconds before the attempt is stopped and counted as failed; nil = no limit.
    public var timeoutSeconds: Double?
    /// Workers that train one trial together (data parallel); 1 for an ordinary trial.
    public var workers: Int
    /// Data-parallel trials: how long a rank waits for a silent peer before the attempt ends
    /// (it is then handed back and resumes from its checkpoint with a new group).
    public var peerTimeoutSeconds: Double = 2
    /// The metric whose final value is the trial's objective (from the sweep's `objective`).
    public var objective: String
    /// OpenBLAS threads of a built-in trial. Part of the config because it changes the bits:
    /// OpenBLAS sums in another order with more threads, so the same config must pin it for
    /// the same numbers on any worker. Parallelism across trials comes from slots.
    public var blasThreads: Int
    /// Built-in trials checkpoint every this many optimiser steps (0 = not by steps) and every
    /// this many seconds (0 = not by time), so a lost attempt resumes from there elsewhere.
    public var checkpointEverySteps: Int
    public var checkpointEverySeconds: Double

    public init(kind: Kind, train: TrainConfig? = nil, command: [String]? = nil, environment: [String: String] = [:],
                timeoutSeconds: Double? = nil, workers: Int = 1, objective: String = "", blasThreads: Int = 1,
                checkpointEverySteps: Int = 0, checkpointEverySeconds: Double = 30) {
        self.kind = kind; self.train = train; self.command = command; self.environment = environment
        self.timeoutSeconds = timeoutSeconds; self.workers = workers; self.objective = objective; self.blasThreads = blasThreads
        self.checkpointEverySteps = checkpointEverySteps; self.checkpointEverySeconds = checkpointEverySeconds
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func decode(json: String) throws -> TrialSpec {
        try JSONDecoder().decode(TrialSpec.self, from: Data(json.utf8))
    }
}

/// Applies a trial's parameters to a training config.
///
/// A parameter name is a dotted path into the config (`training.optimizer.lr`,
/// `model.hidden`) or one of the short names below. Unknown names are an error, so a typo
/// cannot silently leave a parameter unused.
public enum ParameterBinding {
    public static let aliases: [String: String] = [
        "lr": "training.optimizer.lr", "learning_rate": "training.optimizer.lr",
        "optimizer": "training.optimizer.name", "momentum": "training.optimizer.momentum",
        "weight_decay": "training.optimizer.weight_decay", "batch_size": "training.batch_size",
        "epochs": "training.epochs", "clip_norm": "training.clip_norm", "schedule": "training.schedule.name",
        "warmup_steps": "training.schedule.warmup_steps", "hidden": "model.hidden", "activation": "model.activation",
        "dropout": "model.dropout", "model": "model.kind", "seed": "seed",
    ]

    /// The config with each parameter set; `parametersJSON` is a JSON object.
    public static func apply(_ parametersJSON: String, to config: TrainConfig) throws -> TrainConfig {
        guard let params = try JSONSerialization.jsonObject(with: Data(parametersJSON.utf8)) as? [String: Any] else {
            throw BindingError("parameters are not a JSON object: \(parametersJSON)")
        }
        let encoder = JSONEncoder()
        guard var tree = try JSONSerialization.jsonObject(with: encoder.encode(config)) as? [String: Any] else {
            throw BindingError("cannot encode the training config")
        }
        for name in params.keys.sorted() {
            let path = (aliases[name] ?? name).split(separator: ".").map(String.init)
            guard valid(path, in: tree) else {
                throw BindingError("parameter '\(name)' names no field of the training config (use a path such as training.optimizer.lr)")
            }
            tree = set(path[...], to: params[name]!, in: tree)
        }
        let data = try JSONSerialization.data(withJSONObject: tree)
        do {
            return try JSONDecoder().decode(TrainConfig.self, from: data)
        } catch {
            throw BindingError("parameters \(parametersJSON) do not fit the training config: \(error)")
        }
    }

    /// Paths may end in a field that the encoded config leaves out (nil optionals), but every
    /// parent must exist; the top-level sections are fixed.
    static func valid(_ path: [String], in tree: [String: Any]) -> Bool {
        guard let first = path.first else { return false }
        if path.count == 1 { return tree[first] != nil || ["seed", "name"].contains(first) }
        guard let sub = tree[first] as? [String: Any] else { return false }
        return valid(Array(path.dropFirst()), in: sub) || (path.count == 2 && knownLeaf(first, path[1]))
    }

    static func knownLeaf(_ section: String, _ key: String) -> Bool {
        ["data": ["path", "test_path"], "checkpoint": ["dir"]][section]?.contains(key) ?? false
    }

    static func set(_ path: ArraySlice<String>, to value: Any, in tree: [String: Any]) -> [String: Any] {
        var t = tree
        let k = path.first!
        if path.count == 1 { t[k] = value } else { t[k] = set(path.dropFirst(), to: value, in: (t[k] as? [String: Any]) ?? [:]) }
        return t
    }
}

public struct BindingError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}
