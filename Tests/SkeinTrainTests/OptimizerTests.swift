import Foundation
import Testing
import SkeinTensor
@testable import SkeinTrain

@Suite("Optimizers and schedules")
struct OptimizerTests {
    func run(_ cfg: OptimizerConfig, steps: Int, p: [Float], g: [Float], lr: Float) -> [Float] {
        let params = FloatBuffer(p), grads = FloatBuffer(g)
        let opt = Optimizer(cfg, parameterCount: p.count)
        for _ in 0..<steps { opt.update(parameters: params, gradients: grads, lr: lr) }
        return params.array
    }

    @Test("plain SGD with weight decay")
    func sgd() {
        let out = run(OptimizerConfig(kind: .sgd, weightDecay: 0.5), steps: 1, p: [1, -2], g: [0.5, 1], lr: 0.1)
        let expected: [Float] = [1 - 0.1 * (0.5 + 0.5), -2]
        #expect(out == expected)
    }

    @Test("SGD momentum and Nesterov follow the PyTorch recurrences")
    func momentum() {
        // Momentum 0.9, constant gradient 1: v1 = 1, v2 = 1.9; p = -lr*(v1+v2).
        let heavy = run(OptimizerConfig(kind: .sgd, momentum: 0.9), steps: 2, p: [0], g: [1], lr: 0.1)
        #expect(abs(heavy[0] - -0.29) < 1e-6)
        // Nesterov: step uses g + mu*v: 1 + 0.9*1 = 1.9, then 1 + 0.9*1.9 = 2.71.
        let nesterov = run(OptimizerConfig(kind: .sgd, momentum: 0.9, nesterov: true), steps: 2, p: [0], g: [1], lr: 0.1)
        #expect(abs(nesterov[0] - -(0.19 + 0.271)) < 1e-6)
    }

    @Test("Adam's first step moves each parameter by about lr against its gradient's sign, over SIMD and tail lanes")
    func adam() {
        let p = [Float](repeating: 1, count: 7), g: [Float] = [3, -0.5, 2, -7, 1e-3, 4, -1]
        let out = run(OptimizerConfig(kind: .adam), steps: 1, p: p, g: g, lr: 0.01)
        for i in 0..<7 { #expect(abs(out[i] - (1 - 0.01 * (g[i] > 0 ? 1 : -1))) < 1e-4) }
    }

    @Test("AdamW decays weights even with a zero gradient; Adam with L2 through the gradient")
    func adamw() {
        let w = run(OptimizerConfig(kind: .adamw, weightDecay: 0.1), steps: 1, p: [2], g: [0], lr: 0.5)
        #expect(abs(w[0] - 2 * (1 - 0.05)) < 1e-6)
        let l2 = run(OptimizerConfig(kind: .adam, weightDecay: 0.1), steps: 1, p: [2], g: [0], lr: 0.5)
        #expect(abs(l2[0] - 1.5) < 1e-4)
    }

    @Test("updates of disjoint ranges, one optimiser per range (ranks of a sharded optimiser), give the whole update's bits", arguments: [
        OptimizerConfig(kind: .adamw, weightDecay: 0.01), OptimizerConfig(kind: .adam, weightDecay: 0.001),
        OptimizerConfig(kind: .sgd, momentum: 0.9, nesterov: true, weightDecay: 0.01),
    ])
    func rangesMatchWhole(cfg: OptimizerConfig) {
        // 1,003 elements cut at unaligned places: SIMD bodies and scalar tails in every range.
        let n = 1_003, cuts = [0, 333, 334, 701, n]
        let whole = FloatBuffer((0..<n).map { Float(sin(Double($0))) })
        let parts = (0..<cuts.count - 1).map { _ in FloatBuffer(whole.array) }
        let wholeOptimizer = Optimizer(cfg, parameterCount: n)
        let partOptimizers = parts.map { _ in Optimizer(cfg, parameterCount: n) }
        for step in 1...5 {
            let g = FloatBuffer((0..<n).map { Float(cos(Double($0 * step))) * 0.1 })
            wholeOptimizer.update(parameters: whole, gradients: g, lr: 0.01)
            for (k, part) in parts.enumerated() {
                partOptimizers[k].update(parameters: part, gradients: g, lr: 0.01, range: cuts[k]..<cuts[k + 1])
            }
        }
        for (k, part) in parts.enumerated() {
            let r = cuts[k]..<cuts[k + 1]
            #expect(Array(part.array[r]) == Array(whole.array[r]), "\(cfg.kind) range \(r)")
            #expect(Array(partOptimizers[k].first.array[r]) == Array(wholeOptimizer.first.array[r]), "\(cfg.kind) range \(r): moments")
            // Outside its range an optimiser's parameters and moments are untouched.
            let outside = (0..<n).filter { !r.contains($0) }
            #expect(outside.allSatisfy { part.array[$0] == Float(sin(Double($0))) }, "\(cfg.kind) range \(r) wrote outside")
        }
    }

    @Test("gradient clipping by global norm")
    func clip() {
        let g = FloatBuffer([3, 4])
        #expect(Optimizer.clip(g, maxNorm: 1) == 5)
        #expect(abs(g[0] - 0.6) < 1e-6 && abs(g[1] - 0.8) < 1e-6)
        let small = FloatBuffer([0.3, 0.4])
        Optimizer.clip(small, maxNorm: 1)
        #expect(small.array == [0.3, 0.4])
    }

    @Test("learning-rate schedules")
    func schedules() {
        let c = LearningRateSchedule()
        #expect(c.rate(at: 500, base: 0.1, totalSteps: 1000) == 0.1)
        let s = LearningRateSchedule(kind: .step, stepSize: 10, gamma: 0.5)
        #expect(s.rate(at: 9, base: 1, totalSteps: 100) == 1)
        #expect(s.rate(at: 10, base: 1, totalSteps: 100) == 0.5)
        #expect(s.rate(at: 25, base: 1, totalSteps: 100) == 0.25)
        let cos = LearningRateSchedule(kind: .cosine, warmupSteps: 10, minRate: 0)
        #expect(abs(cos.rate(at: 0, base: 1, totalSteps: 110) - 0.1) < 1e-6)
        #expect(cos.rate(at: 9, base: 1, totalSteps: 110) == 1)
        #expect(abs(cos.rate(at: 60, base: 1, totalSteps: 110) - 0.5) < 1e-6)
        #expect(abs(cos.rate(at: 110, base: 1, totalSteps: 110)) < 1e-6)
    }

    @Test("invalid optimizer settings are refused with the field name")
    func validation() {
        #expect(throws: TrainError.invalidConfig("optimizer.lr must be > 0 (got 0.0)")) { try OptimizerConfig(learningRate: 0).validate() }
        #expect(throws: TrainError.self) { try OptimizerConfig(kind: .adam, nesterov: true).validate() }
    }
}
