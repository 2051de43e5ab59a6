import SkeinRandom
import SkeinTensor

/// A feed-forward network whose parameters and gradients each live in one contiguous flat
/// buffer (so a data-parallel group can allreduce all gradients in one call).
///
/// Not thread-safe: one training task owns a network. Workspaces are sized for the largest
/// batch seen and reused, so a training step allocates nothing.
public final class Network {
    public let layers: [Layer]
    public let inputCount: Int
    public let outputCount: Int
    /// All weights and biases, layer after layer (W row-major inputs×outputs, then b).
    public let parameters: FloatBuffer
    /// Gradients, laid out exactly like `parameters`: the network's own buffer, or storage
    /// lent for a step (`useGradientStorage`).
    public private(set) var gradients: FloatBuffer
    private let ownGradients: FloatBuffer
    /// Offset of each dense layer's W in the flat buffers (nil for other layers).
    let offsets: [Int?]
    /// Widths of each layer's output.
    let widths: [Int]

    private var capacity = 0
    private var outputs: [FloatBuffer] = []
    private var deltas: [FloatBuffer] = []
    private var masks: [FloatBuffer?] = []
    private var ones = FloatBuffer(count: 0)

    /// Builds the network; `layers` must start with a dense layer and chain widths correctly.
    public init(layers: [Layer]) throws(TrainError) {
        guard case let .dense(firstIn, _) = layers.first else {
            throw TrainError.invalidModel("a network must start with a dense layer")
        }
        var width = firstIn, offset = 0
        var offsets: [Int?] = [], widths: [Int] = []
        for (i, layer) in layers.enumerated() {
            switch layer {
            case let .dense(inputs, outputs):
                guard inputs == width, inputs > 0, outputs > 0 else {
                    throw TrainError.invalidModel("layer \(i) \(layer) expects \(inputs) inputs but receives \(width)")
                }
                offsets.append(offset)
                offset += layer.parameterCount
                width = outputs
            case let .dropout(rate):
                guard rate >= 0, rate < 1 else { throw TrainError.invalidModel("layer \(i): dropout rate \(rate) not in [0, 1)") }
                offsets.append(nil)
            default:
                offsets.append(nil)
            }
            widths.append(width)
        }
        self.layers = layers
        inputCount = firstIn
        outputCount = width
        self.offsets = offsets
        self.widths = widths
        parameters = FloatBuffer(count: offset)
        ownGradients = FloatBuffer(count: offset)
        gradients = ownGradients
    }

    /// Makes `backward` write into `storage` (as many floats as there are parameters), or
    /// into the network's own buffer again when nil. A data-parallel rank computes a step's
    /// gradients straight into the memory its allreduce sends from.
    public func useGradientStorage(_ storage: FloatBuffer?) {
        precondition(storage.map { $0.count == parameterCount } ?? true, "gradient storage of the wrong size")
        gradients = storage ?? ownGradients
    }

    /// Convenience: an MLP `inputs → hidden… → outputs` with `activation` after every hidden
    /// dense layer and optional dropout after each activation. No hidden layers gives a linear
    /// model (softmax regression or linear regression, depending on the loss).
    public static func mlp(inputs: Int, hidden: [Int], outputs: Int, activation: Layer = .relu,
                           dropout: Float = 0) throws(TrainError) -> Network {
        var layers: [Layer] = []
        var width = inputs
        for h in hidden {
            layers.append(.dense(inputs: width, outputs: h))
            layers.append(activation)
            if dropout > 0 { layers.append(.dropout(rate: dropout)) }
            width = h
        }
        layers.append(.dense(inputs: width, outputs: outputs))
        return try Network(layers: layers)
    }

    public var parameterCount: Int { parameters.count }

    /// Fills weights with Glorot-uniform (He-uniform before ReLU/GELU) from `seed`; biases 0.
    public func initialize(seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        for (i, layer) in layers.enumerated() {
            guard case let .dense(fanIn, fanOut) = layer, let off = offsets[i] else { continue }
            let next = i + 1 < layers.count ? layers[i + 1] : nil
            let bound: Float = (next == .relu || next == .gelu)
                ? (6 / Float(fanIn)).squareRoot()
                : (6 / Float(fanIn + fanOut)).squareRoot()
            let w = parameters.pointer + off
            for j in 0..<(fanIn * fanOut) { w[j] = (rng.nextFloat() * 2 - 1) * bound }
            (w + fanIn * fanOut).update(repeating: 0, count: fanOut)
        }
    }

    private func reserve(batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        outputs = widths.map { FloatBuffer(count: batch * $0) }
        deltas = ([inputCount] + widths).map { FloatBuffer(count: batch * $0) }
        masks = zip(layers, widths).map { layer, w in
            if case .dropout = layer { return FloatBuffer(count: batch * w) }
            return nil
        }
        ones = FloatBuffer(count: batch, value: 1)
    }

    /// Runs the network on `batch` rows of `x` (batch × inputCount) and returns a pointer to
    /// the output (batch × outputCount), valid until the next call. Dropout draws from `rng`
    /// only when `training` is true.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int, training: Bool, rng: inout Xoshiro256) -> UnsafeMutablePointer<Float> {
        reserve(batch: batch)
        var input = x
        for (i, layer) in layers.enumerated() {
            let out = outputs[i].pointer
            let n = batch * widths[i]
            switch layer {
            case let .dense(inputs, outs):
                let w = parameters.pointer + offsets[i]!
                let b = w + inputs * outs
                // Broadcast the bias into the output, then accumulate x·W onto it (beta = 1).
                for r in 0..<batch { (out + r * outs).update(from: b, count: outs) }
                BLAS.gemm(.none, .none, m: batch, n: outs, k: inputs, a: input, lda: inputs, b: w, ldb: outs,
                          beta: 1, c: out, ldc: outs)
            case let .dropout(rate):
                if training && rate > 0 {
                    let mask = masks[i]!.pointer
                    let keep = 1 / (1 - rate)
                    for j in 0..<n {
                        mask[j] = rng.nextFloat() >= rate ? keep : 0
                        out[j] = input[j] * mask[j]
                    }
                } else {
                    out.update(from: input, count: n)
                }
            default:
                Activation.forward(layer, input, out, n)
            }
            input = UnsafePointer(out)
        }
        return outputs[layers.count - 1].pointer
    }

    /// Back-propagates `dOutput` (batch × outputCount, already divided by the normaliser the
    /// caller wants) through the last `forward`, which must have been a training forward of
    /// the same `x` and `batch`, and *overwrites* `gradients`.
    public func backward(_ x: UnsafePointer<Float>, batch: Int, dOutput: UnsafePointer<Float>) {
        var dy = dOutput
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let input: UnsafePointer<Float> = i == 0 ? x : UnsafePointer(outputs[i - 1].pointer)
            let dx = deltas[i].pointer // gradient w.r.t. this layer's input
            let n = batch * (i == 0 ? inputCount : widths[i - 1])
            switch layers[i] {
            case let .dense(inputs, outs):
                let off = offsets[i]!
                let w = parameters.pointer + off
                let gw = gradients.pointer + off
                // dW = xᵀ·dy ; db = dyᵀ·1 ; dx = dy·Wᵀ
                BLAS.gemm(.transpose, .none, m: inputs, n: outs, k: batch, a: input, lda: inputs, b: dy, ldb: outs,
                          c: gw, ldc: outs)
                BLAS.gemv(.transpose, rows: batch, cols: outs, a: dy, lda: outs, x: ones.pointer, y: gw + inputs * outs)
                if i > 0 {
                    BLAS.gemm(.none, .transpose, m: batch, n: inputs, k: outs, a: dy, lda: outs, b: w, ldb: outs,
                              c: dx, ldc: inputs)
                }
            case .dropout:
                if let mask = masks[i]?.pointer { Vectorized.multiply(dy, mask, dx, count: n) }
            default:
                Activation.backward(layers[i], input, outputs[i].pointer, dy, dx, n)
            }
            if i == 0 { break }
            dy = UnsafePointer(dx)
        }
    }
}
