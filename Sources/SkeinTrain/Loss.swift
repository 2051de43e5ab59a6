#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A loss over a batch of network outputs.
public enum Loss: String, Codable, Sendable {
    /// Softmax over the outputs, then cross-entropy with integer class labels.
    case softmaxCrossEntropy = "softmax_cross_entropy"
    /// Mean over outputs of the squared error against float targets.
    case meanSquaredError = "mean_squared_error"

    /// The targets of a batch: class labels or float rows.
    public enum Targets {
        case classes(UnsafePointer<Int32>)
        case values(UnsafePointer<Float>)
    }

    /// Computes the summed loss over `batch` rows of `output` (width `width`) and, when `grad`
    /// is given, writes d(sum loss)/d(output) divided by `normalizer` into it. Returns the
    /// summed loss and the number of correct predictions (classification only).
    ///
    /// Dividing by a caller-chosen normaliser (the global batch size) is what lets ranks of a
    /// data-parallel group add their gradients and get the full-batch mean.
    public func evaluate(_ output: UnsafePointer<Float>, batch: Int, width: Int, targets: Targets,
                         grad: UnsafeMutablePointer<Float>?, normalizer: Float) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let scale = 1 / normalizer
        switch (self, targets) {
        case let (.softmaxCrossEntropy, .classes(labels)):
            for r in 0..<batch {
                let row = output + r * width
                var maxV = row[0], arg = 0
                for j in 1..<width where row[j] > maxV { maxV = row[j]; arg = j }
                var sum: Float = 0
                for j in 0..<width { sum += expf(row[j] - maxV) }
                let label = Int(labels[r])
                let logSum = logf(sum)
                total += Double(logSum - (row[label] - maxV))
                if arg == label { correct += 1 }
                if let g = grad?.advanced(by: r * width) {
                    let inv = 1 / sum
                    for j in 0..<width { g[j] = expf(row[j] - maxV) * inv * scale }
                    g[label] -= scale
                }
            }
        case let (.meanSquaredError, .values(t)):
            let n = batch * width
            let perRow = 1 / Float(width)
            for j in 0..<n {
                let d = output[j] - t[j]
                total += Double(d * d * perRow)
                grad?[j] = 2 * d * perRow * scale
            }
        default:
            preconditionFailure("loss \(self) does not match its targets")
        }
        return (total, correct)
    }
}
