/// A dense float32 tensor: a shape and contiguous row-major storage.
///
/// Used for data sets, evaluation and tests. The training hot path works on raw pointers into
/// preallocated buffers instead, so a step allocates nothing.
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count, "shape \(shape) does not match \(scalars.count) scalars")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) { self.init(shape: shape, scalars: Array(repeating: 0, count: shape.reduce(1, *))) }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// Row `i` of a rank-2 tensor.
    public func row(_ i: Int) -> ArraySlice<Float> {
        precondition(rank == 2)
        return scalars[i * shape[1]..<(i + 1) * shape[1]]
    }

    /// Matrix product of two rank-2 tensors, through BLAS.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0])
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        var c = Tensor(zeros: [m, n])
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                c.scalars.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(.none, .none, m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n,
                              c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// Reshapes without copying; the element count must not change.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, scalars: scalars) }
}

/// A fixed-size float buffer that is allocated once and reused (workspaces, parameters,
/// gradients). Not copyable by accident: it is a class, and callers share it knowingly.
///
/// `@unchecked Sendable`: instances are confined to one training task at a time; the type
/// is handed between tasks (e.g. into an allreduce) but never used by two at once.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    /// For a view, what owns the memory (kept alive as long as the view); nil when this
    /// buffer allocated it.
    private let owner: AnyObject?

    public init(count: Int, value: Float = 0) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
        owner = nil
    }

    /// A view of `count` floats at `pointer`, memory that `owner` keeps valid (a shared-memory
    /// window, say): the view holds `owner` and never frees the memory itself.
    public init(viewing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.count = count
        self.pointer = pointer
        self.owner = owner
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { pointer.update(from: b, count: values.count) } }
    }

    deinit { if owner == nil { pointer.deallocate() } }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func fill(_ v: Float) { pointer.update(repeating: v, count: count) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}
