/// xoshiro256** (Blackman & Vigna, 2018): fast, statistically strong, and its whole state is
/// four words, so a checkpoint can store it and a resumed run continues the same stream.
/// Every random choice in Skein (search, init, shuffling, dropout) draws from one of these,
/// seeded from the sweep seed and a stream label through `Seed.derive`.
public struct Xoshiro256: RandomNumberGenerator, Sendable, Equatable, Codable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Seeds the four state words from `seed` with SplitMix64, as the authors recommend.
    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    /// Restores a saved state (four words, not all zero).
    public init?(state: [UInt64]) {
        guard state.count == 4, state != [0, 0, 0, 0] else { return nil }
        s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3]
    }

    /// The whole state, for checkpoints.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1.0p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller; one of the pair is discarded to keep no hidden state).
    public mutating func nextGaussian() -> Double {
        var u = nextDouble()
        while u <= .leastNormalMagnitude { u = nextDouble() }
        let v = nextDouble()
        return (-2 * _log(u)).squareRoot() * _cos(2 * .pi * v)
    }

    /// Uniform integer in 0..<bound without modulo bias (Lemire's method).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }
}

/// SplitMix64: used to expand seeds and to derive independent stream seeds.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Derives stream seeds so that, e.g., trial 7's initialisation depends only on the sweep
/// seed and 7, never on the order in which anything else ran.
public enum Seed {
    /// Mixes `base` with each label in turn; different label lists give unrelated seeds.
    public static func derive(_ base: UInt64, _ labels: UInt64...) -> UInt64 {
        var mixer = SplitMix64(state: base)
        var h = mixer.next()
        for l in labels {
            mixer = SplitMix64(state: h ^ (l &* 0x9E37_79B9_7F4A_7C15))
            h = mixer.next()
        }
        return h
    }

    /// A stable 64-bit label for a string (FNV-1a), e.g. a stream name such as "dropout".
    public static func label(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}

// Foundation-free math so this target imports nothing.
@inline(__always) private func _log(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.log(x)
    #else
    return Darwin.log(x)
    #endif
}
@inline(__always) private func _cos(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.cos(x)
    #else
    return Darwin.cos(x)
    #endif
}
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
