import CKernels

/// Element-wise kernels the Swift compiler cannot vectorise on its own.
///
/// Swift cannot prove raw pointers do not alias and builds for baseline x86-64 (SSE2), so
/// Adam's update (four streams, a square root and a division per element) stayed scalar:
/// 0.31 s per Fashion-MNIST epoch. The C kernel is compiled for AVX-512, AVX2 and baseline
/// (`target_clones`), picked by the CPU at load time, without FMA contraction, so every
/// version gives the same bits.
public enum Vectorized {
    /// p ← p·decay − stepSize·m′ / (√(v′·invC2) + eps), with m′ = b1·m + (1−b1)·g′,
    /// v′ = b2·v + (1−b2)·g′², g′ = g + l2·p; m and v are updated in place.
    @inline(__always)
    public static func adamUpdate(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                                  v: UnsafeMutablePointer<Float>, count: Int, b1: Float, b2: Float, l2: Float, decay: Float,
                                  stepSize: Float, invC2: Float, eps: Float) {
        skein_adam_update(p, g, m, v, count, b1, b2, l2, decay, stepSize, invC2, eps)
    }

    /// y = max(x, 0); `x` and `y` must not overlap.
    @inline(__always)
    public static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) { skein_relu(x, y, count) }

    /// dx = x > 0 ? dy : 0; no buffer may overlap another.
    @inline(__always)
    public static func reluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int) {
        skein_relu_backward(x, dy, dx, count)
    }

    /// z = x ⊙ y; `z` must not overlap `x` or `y`.
    @inline(__always)
    public static func multiply(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>, count: Int) {
        skein_multiply(x, y, z, count)
    }

    /// y += x, single-threaded: for collectives, where OpenBLAS's thread pool would fight the
    /// other ranks on the same host for cores.
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { skein_add(x, y, count) }

    /// y = y + x over int64, wrapping: exact, so the order of additions does not matter.
    public static func add(_ x: UnsafePointer<Int64>, into y: UnsafeMutablePointer<Int64>, count: Int) { skein_add_i64(x, y, count) }

    /// x *= a, single-threaded.
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, count: Int) { skein_scale(x, a, count) }
}
