import CKernels

/// An exact, order-independent sum of float tensors: each contribution is rounded once to fixed
/// point (`fractionBits` fractional bits) and added as a wrapping int64. Integer addition is
/// associative, so the total has the same bits however the contributions are grouped — across
/// ranks, in any order, for any number of ranks (int64 partial sums from several ranks are
/// added with `RingGroup.allreduce` for Int64, exactly).
///
/// Precision: 2^-40 ≈ 9.1e-13 absolute per contribution (float32 keeps 24 significant bits, so
/// values from about 2^-16 up are represented without loss). Range: each contribution's
/// elements must stay below `limit` — 2^11 = 2048 as a value (the fast rounding conversion
/// works below 2^51 in fixed point), and below 2^62 / `maxContributions` in fixed point, so no
/// total can overflow; larger, infinite or NaN values are counted and left out, and the caller
/// fails rather than round silently.
///
/// `@unchecked Sendable`: confined to one training thread at a time, like `FloatBuffer`.
public final class FixedPointSum: @unchecked Sendable {
    public static let fractionBits: Int32 = 40
    public let count: Int
    public let pointer: UnsafeMutablePointer<Int64>
    /// How many contributions a total may combine (sets the per-contribution range).
    public let maxContributions: Int

    public init(count: Int, maxContributions: Int) {
        precondition(maxContributions >= 1)
        self.count = count
        self.maxContributions = maxContributions
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    /// The largest magnitude (exclusive) one contribution's element may have, in fixed point.
    private var scaledLimit: Double {
        min(Double(sign: .plus, exponent: 51, significand: 1), Double(sign: .plus, exponent: 62, significand: 1) / Double(maxContributions))
    }

    /// The same, as a value.
    public var limit: Double { scaledLimit / Double(sign: .plus, exponent: Int(Self.fractionBits), significand: 1) }

    public func reset() { pointer.update(repeating: 0, count: count) }

    /// Adds `values` (count elements); returns how many were out of range (left out).
    public func add(_ values: UnsafePointer<Float>) -> Int {
        skein_fixed_accumulate(values, pointer, count, Self.fractionBits, scaledLimit)
    }

    /// Writes the total as floats (each rounded once, to nearest).
    public func write(into values: UnsafeMutablePointer<Float>) {
        skein_fixed_to_float(pointer, values, count, Self.fractionBits)
    }

    public var buffer: UnsafeMutableBufferPointer<Int64> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}
