import CBLAS

/// The BLAS calls Skein uses, wrapped once. Matrices are row-major, float32.
/// Not thread-safe with respect to `setThreadCount`, which changes a process-wide setting.
public enum BLAS {
    public enum Transpose: Sendable { case none, transpose
        var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// C ← alpha · op(A) · op(B) + beta · C, where op(A) is m×k and op(B) is k×n.
    @inline(__always)
    public static func gemm(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, ta.cblas, tb.cblas, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                    b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y ← alpha · op(A) · x + beta · y, A is rows×cols.
    @inline(__always)
    public static func gemv(_ ta: Transpose, rows: Int, cols: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        guard rows > 0, cols > 0 else { return }
        cblas_sgemv(CblasRowMajor, ta.cblas, Int32(rows), Int32(cols), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// y ← alpha · x + y
    @inline(__always)
    public static func axpy(_ n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// x ← alpha · x
    @inline(__always)
    public static func scal(_ n: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        cblas_sscal(Int32(n), alpha, x, 1)
    }

    /// Euclidean norm of x.
    @inline(__always)
    public static func nrm2(_ n: Int, x: UnsafePointer<Float>) -> Float {
        guard n > 0 else { return 0 }
        return cblas_snrm2(Int32(n), x, 1)
    }

    /// x · y
    @inline(__always)
    public static func dot(_ n: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
        guard n > 0 else { return 0 }
        return cblas_sdot(Int32(n), x, 1, y, 1)
    }

    /// Sets OpenBLAS's thread count for this process (one per slot keeps trials from fighting).
    public static func setThreadCount(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }
}
