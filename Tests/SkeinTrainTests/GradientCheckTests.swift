import Testing
import SkeinRandom
import SkeinTensor
@testable import SkeinTrain

/// Central finite differences against back-propagation, for every layer and loss.
@Suite("Gradient checks")
struct GradientCheckTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let layers: [Layer]
        let loss: Loss
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "dense + softmax cross-entropy", layers: [.dense(inputs: 5, outputs: 4)], loss: .softmaxCrossEntropy),
        Case(name: "dense + mean squared error", layers: [.dense(inputs: 5, outputs: 3)], loss: .meanSquaredError),
        Case(name: "relu", layers: [.dense(inputs: 5, outputs: 6), .relu, .dense(inputs: 6, outputs: 4)], loss: .softmaxCrossEntropy),
        Case(name: "tanh", layers: [.dense(inputs: 5, outputs: 6), .tanh, .dense(inputs: 6, outputs: 3)], loss: .meanSquaredError),
        Case(name: "gelu", layers: [.dense(inputs: 5, outputs: 6), .gelu, .dense(inputs: 6, outputs: 4)], loss: .softmaxCrossEntropy),
        Case(name: "dropout", layers: [.dense(inputs: 5, outputs: 8), .tanh, .dropout(rate: 0.3), .dense(inputs: 8, outputs: 4)], loss: .softmaxCrossEntropy),
        Case(name: "deep mixed", layers: [.dense(inputs: 5, outputs: 7), .gelu, .dense(inputs: 7, outputs: 6), .relu, .dropout(rate: 0.2),
                                          .dense(inputs: 6, outputs: 5), .tanh, .dense(inputs: 5, outputs: 3)], loss: .meanSquaredError),
    ]

    @Test("analytic gradients match finite differences", arguments: cases)
    func check(_ c: Case) throws {
        let net = try Network(layers: c.layers)
        net.initialize(seed: 11)
        let batch = 6
        var rng = Xoshiro256(seed: 5)
        let x = (0..<(batch * net.inputCount)).map { _ in Float(rng.nextGaussian()) }
        let labels = (0..<batch).map { _ in Int32(rng.nextInt(below: net.outputCount)) }
        let values = (0..<(batch * net.outputCount)).map { _ in Float(rng.nextGaussian()) }
        let grad = FloatBuffer(count: batch * net.outputCount)

        // The same dropout mask on every evaluation: reseed before each forward.
        func lossValue(withGradient: Bool) -> Double {
            var dropoutRNG = Xoshiro256(seed: 99)
            return x.withUnsafeBufferPointer { xp in
                let out = net.forward(xp.baseAddress!, batch: batch, training: true, rng: &dropoutRNG)
                let r = labels.withUnsafeBufferPointer { lp in
                    values.withUnsafeBufferPointer { vp in
                        c.loss.evaluate(out, batch: batch, width: net.outputCount,
                                        targets: c.loss == .softmaxCrossEntropy ? .classes(lp.baseAddress!) : .values(vp.baseAddress!),
                                        grad: withGradient ? grad.pointer : nil, normalizer: Float(batch))
                    }
                }
                if withGradient { net.backward(xp.baseAddress!, batch: batch, dOutput: grad.pointer) }
                return r.loss / Double(batch)
            }
        }

        _ = lossValue(withGradient: true)
        let analytic = net.gradients.array
        let h: Float = 1e-2
        var worst = 0.0
        for i in 0..<net.parameterCount {
            let saved = net.parameters[i]
            net.parameters[i] = saved + h
            let up = lossValue(withGradient: false)
            net.parameters[i] = saved - h
            let down = lossValue(withGradient: false)
            net.parameters[i] = saved
            let numeric = (up - down) / (2 * Double(h))
            let err = abs(numeric - Double(analytic[i])) / max(1e-2, abs(numeric) + abs(Double(analytic[i])))
            worst = max(worst, err)
            #expect(err < 3e-2, "parameter \(i): analytic \(analytic[i]) numeric \(numeric)")
        }
        #expect(worst < 3e-2)
    }

    @Test("a broken gradient is caught: the check can fail")
    func detectsWrongGradient() throws {
        // Scale the analytic gradient by 1.1 and confirm the comparison flags it.
        let net = try Network(layers: [.dense(inputs: 3, outputs: 2)])
        net.initialize(seed: 1)
        let x: [Float] = [0.5, -1, 2]
        var rng = Xoshiro256(seed: 0)
        let values: [Float] = [0.3, -0.2]
        let grad = FloatBuffer(count: 2)
        x.withUnsafeBufferPointer { xp in
            let out = net.forward(xp.baseAddress!, batch: 1, training: true, rng: &rng)
            _ = values.withUnsafeBufferPointer { Loss.meanSquaredError.evaluate(out, batch: 1, width: 2, targets: .values($0.baseAddress!), grad: grad.pointer, normalizer: 1) }
            net.backward(xp.baseAddress!, batch: 1, dOutput: grad.pointer)
        }
        let wrong = net.gradients[0] * 1.1
        let saved = net.parameters[0]
        func loss() -> Double {
            x.withUnsafeBufferPointer { xp in
                let out = net.forward(xp.baseAddress!, batch: 1, training: true, rng: &rng)
                return values.withUnsafeBufferPointer { Loss.meanSquaredError.evaluate(out, batch: 1, width: 2, targets: .values($0.baseAddress!), grad: nil, normalizer: 1).loss }
            }
        }
        net.parameters[0] = saved + 1e-2; let up = loss()
        net.parameters[0] = saved - 1e-2; let down = loss()
        let numeric = (up - down) / 2e-2
        #expect(abs(numeric - Double(wrong)) / (abs(numeric) + abs(Double(wrong))) > 3e-2)
    }
}
