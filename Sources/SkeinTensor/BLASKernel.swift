#if canImport(Glibc)
import Glibc
#endif

/// Chooses OpenBLAS's kernel from the CPU's feature flags.
///
/// OpenBLAS 0.3.21 (Debian 12) identifies CPUs by family and model. Under hypervisors that
/// report a generic model ("Intel Xeon Processor"), it falls back to its Prescott (SSE3)
/// kernels even on AVX-512 hardware: measured here, an MLP epoch takes 2.8 s instead of 0.96 s.
/// OpenBLAS reads `OPENBLAS_CORETYPE` when the library loads, so the CLI sets it and re-executes
/// itself once, before any BLAS call. A value the user set is always respected.
public enum BLASKernel {
    /// The OpenBLAS core type for these `/proc/cpuinfo` flags, or nil to let OpenBLAS decide.
    public static func coreType(forFlags flags: Set<Substring>) -> String? {
        if ["avx512f", "avx512dq", "avx512bw", "avx512vl"].allSatisfy({ flags.contains(Substring($0)) }) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy({ flags.contains(Substring($0)) }) { return "Haswell" }
        return nil
    }

    /// Flags of the first CPU in `/proc/cpuinfo`.
    public static func cpuFlags() -> Set<Substring> {
        guard let f = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            if s.hasPrefix("flags") {
                return Set(s.split(separator: ":", maxSplits: 1).last?.split(separator: " ").map { $0.trimmingTrailingNewline } ?? [])
            }
        }
        return []
    }

    /// If `OPENBLAS_CORETYPE` is unset and the CPU's flags name a better kernel, sets it and
    /// re-executes this process with the same arguments. Returns if nothing needs doing.
    public static func selectForThisCPU() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SKEIN_BLAS_KERNEL_CHOSEN") == nil else { return }
        setenv("SKEIN_BLAS_KERNEL_CHOSEN", "1", 1)
        guard let core = coreType(forFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // execv returned: keep running with the default kernel.
    }
}

extension Substring {
    fileprivate var trimmingTrailingNewline: Substring {
        var s = self
        while let l = s.last, l == "\n" || l == "\r" { s = s.dropLast() }
        return s
    }
}
