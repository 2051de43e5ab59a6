import Testing
@testable import SkeinConfig
@testable import SkeinSearch

@Suite("Sweep configs")
struct SweepConfigTests {
    @Test("a valid config parses with defaults and the search space in file order")
    func valid() throws {
        let yaml = """
        name: demo
        seed: 4
        objective: {metric: val_loss, direction: minimize}
        budget: {max_trials: 5, max_concurrent: 2, max_duration: 10m}
        retries: 2
        trial:
          kind: builtin
          train:
            model: {kind: mlp, hidden: [32]}
            training: {epochs: 1}
        search:
          method: random
          parameters:
            lr: {loguniform: [0.0001, 0.1]}
            hidden: {values: [[64], [128, 64]]}
            dropout: 0.1
        """
        let c = try SweepConfig.parse(yaml: yaml, file: "demo.yaml")
        #expect(c.name == "demo" && c.seed == 4 && c.retries == 2 && c.objective.metric == "val_loss" && !c.objective.maximize)
        #expect(c.budget == .init(maxTrials: 5, maxConcurrent: 2, maxDurationSeconds: 600))
        #expect(c.space.names == ["lr", "hidden", "dropout"])
        #expect(c.trial.objective == "val_loss" && c.trial.train?.model.hidden == [32] && c.trial.blasThreads == 1)
        #expect(c.totalTrials == 5)
    }

    @Test("every problem is reported, each with its line and field")
    func problems() {
        let yaml = """
        name: bad
        objective: {metric: loss, direction: sideways}
        budget: {max_trials: 0}
        trial:
          kind: command
          command: "python train.py --lr {lr}"
        search:
          method: grid
          parameters:
            lr: {uniform: [1, 0.1]}
            width: {values: []}
            depth: {gaussian: [0, 1]}
        extra: 1
        """
        let error = #expect(throws: ConfigError.self) { try SweepConfig.parse(yaml: yaml, file: "bad.yaml") }
        let lines = error?.problems.map(\.description) ?? []
        #expect(lines.contains("bad.yaml:13:1: extra: unknown field (expected one of: budget, name, objective, retries, search, seed, trial)"))
        #expect(lines.contains { $0.hasPrefix("bad.yaml:2:") && $0.contains("objective.direction: must be minimize or maximize (got 'sideways')") })
        #expect(lines.contains { $0.hasPrefix("bad.yaml:3:") && $0.contains("budget.max_trials: must be >= 1") })
        #expect(lines.contains { $0.hasPrefix("bad.yaml:6:") && $0.contains("trial.command: expected a list of arguments") })
        #expect(lines.contains { $0.hasPrefix("bad.yaml:10:") && $0.contains("search.parameters.lr.uniform: low (1.0) must not exceed high (0.1)") })
        #expect(lines.contains { $0.hasPrefix("bad.yaml:11:") && $0.contains("search.parameters.width.values: expected a non-empty list") })
        #expect(lines.contains { $0.hasPrefix("bad.yaml:12:") && $0.contains("search.parameters.depth.gaussian: unknown distribution") })
        #expect(lines.count == 7, "\(lines.joined(separator: "\n"))")
    }

    @Test("training-config errors inside trial.train are located too; YAML syntax errors give the line")
    func nested() {
        let yaml = """
        name: n
        objective: {metric: loss}
        budget: {max_trials: 1}
        trial:
          kind: builtin
          train:
            training:
              epochs: many
        """
        let e = #expect(throws: ConfigError.self) { try SweepConfig.parse(yaml: yaml, file: "n.yaml") }
        #expect(e?.problems.first?.description.hasPrefix("n.yaml:8:") == true)
        #expect(e?.problems.first?.field == "trial.train.training.epochs")
        let syntax = #expect(throws: ConfigError.self) { try SweepConfig.parse(yaml: "name: [unclosed\n", file: "s.yaml") }
        #expect(syntax?.problems.first?.line != nil)
    }

    @Test("data-parallel trials need the built-in trainer; other kinds are refused, not silently run on one worker")
    func workersRefused() {
        let yaml = "name: dp\nobjective: {metric: loss}\nbudget: {max_trials: 1}\ntrial: {kind: noop, workers: 2}\n"
        let e = #expect(throws: ConfigError.self) { try SweepConfig.parse(yaml: yaml, file: "dp.yaml") }
        #expect(e?.problems.map(\.description) == ["dp.yaml:4:30: trial.workers: data-parallel trials (workers > 1) need kind builtin"])
    }

    @Test("parameters bind onto training configs by alias or path; unknown names are an error")
    func binding() throws {
        let base = SkeinTrain.TrainConfig()
        let c = try ParameterBinding.apply(#"{"lr":0.01,"hidden":[64,32],"training.epochs":7,"dropout":0.2,"optimizer":"sgd"}"#, to: base)
        #expect(c.training.optimizer.learningRate == 0.01 && c.model.hidden == [64, 32] && c.training.epochs == 7)
        #expect(c.model.dropout == 0.2 && c.training.optimizer.kind == .sgd)
        #expect(throws: BindingError.self) { try ParameterBinding.apply(#"{"learning_rat":0.1}"#, to: base) }
        #expect(throws: BindingError.self) { try ParameterBinding.apply(#"{"optimizer":"nadam"}"#, to: base) }
    }
}

import SkeinTrain
