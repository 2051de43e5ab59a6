// swift-tools-version: 6.1
// Skein: a distributed training coordinator. The target graph mirrors ../shared/DESIGN.md:
// system-library shims at the bottom, pure logic (wire, tensor, search) above them, I/O
// layers (transport, store) next, runtimes (coordinator, worker) on top, the CLI last.
import PackageDescription

let package = Package(
    name: "Skein",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "skein", targets: ["skein"]),
        .library(name: "SkeinWire", targets: ["SkeinWire"]),
        .library(name: "SkeinTransport", targets: ["SkeinTransport"]),
        .library(name: "SkeinTrain", targets: ["SkeinTrain"]),
        .library(name: "SkeinTensor", targets: ["SkeinTensor"]),
        .library(name: "SkeinStore", targets: ["SkeinStore"]),
        .library(name: "SkeinCollective", targets: ["SkeinCollective"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // System libraries: exactly one Swift target imports each.
        .systemLibrary(name: "CNNG", providers: [.apt(["libnng-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "SkeinWire"),
        .target(name: "SkeinRandom"),
        // Element-wise kernels in C, compiled per instruction set (target_clones) and picked at run time.
        .target(name: "CKernels"),
        .target(name: "SkeinTensor", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "SkeinTrain", dependencies: ["SkeinTensor", "SkeinRandom", "SkeinWire", "SkeinFiles", "CZlib"]),
        // Crash-safe whole-file writes (checkpoints in training and in the run store).
        .target(name: "SkeinFiles"),
        .target(name: "SkeinSearch", dependencies: ["SkeinRandom"]),
        // Allreduce/broadcast among the ranks of a data-parallel group, peer to peer.
        .target(name: "SkeinCollective", dependencies: ["SkeinTransport", "SkeinWire", "SkeinTensor", "CDoorbell"], exclude: ["README.md"]),
        // Futex doorbell and atomics on memory shared between processes (the ring's windows).
        .target(name: "CDoorbell"),
        .target(name: "SkeinStore", dependencies: [
            "SkeinFiles", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "SkeinReport", dependencies: ["SkeinStore"]),
        .target(name: "SkeinCoordinator", dependencies: [
            "SkeinSearch", "SkeinStore", "SkeinReport", "SkeinTransport", "SkeinConfig", "SkeinWire", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "SkeinWorker", dependencies: [
            "SkeinTrain", "SkeinTensor", "SkeinTransport", "SkeinCollective", "SkeinConfig", "SkeinSearch", "SkeinWire",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Config files: YAML decoding with file/line/field errors, validation of every problem.
        .target(name: "SkeinConfig", dependencies: ["SkeinTrain", "SkeinSearch", .product(name: "Yams", package: "Yams")]),
        .target(name: "SkeinTransport", dependencies: ["CNNG", "SkeinWire", .product(name: "Crypto", package: "swift-crypto")]),

        .executableTarget(name: "skein", dependencies: [
            "SkeinWire", "SkeinTransport", "SkeinTrain", "SkeinTensor", "SkeinConfig", "SkeinStore", "SkeinReport", "SkeinCoordinator", "SkeinWorker",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // A small peer process the transport tests start, so round trips cross real process boundaries.
        .executableTarget(name: "skein-testpeer", dependencies: ["SkeinTransport", "SkeinStore", "SkeinCollective", "SkeinTensor"]),

        .testTarget(name: "SkeinWireTests", dependencies: ["SkeinWire"]),
        .testTarget(name: "SkeinStoreTests", dependencies: ["SkeinStore", "SkeinTestSupport", "skein-testpeer",
                                                           .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SkeinCoordinatorTests", dependencies: ["SkeinCoordinator", "SkeinConfig", "SkeinSearch", "SkeinWire", "SkeinTrain", "SkeinReport"]),
        // Real coordinator and worker processes over real nng sockets.
        .testTarget(name: "SkeinClusterTests", dependencies: ["skein", "SkeinStore", "SkeinTestSupport", "SkeinTransport", "SkeinWire"]),
        .testTarget(name: "SkeinCollectiveTests", dependencies: ["SkeinCollective", "SkeinTensor", "SkeinTransport", "SkeinWire", "SkeinTestSupport", "skein-testpeer"]),
        .testTarget(name: "SkeinTrainTests", dependencies: ["SkeinTrain", "SkeinTensor", "SkeinRandom", "SkeinTestSupport"]),
        // Helpers for multi-process tests: start built executables, unique addresses and paths.
        .target(name: "SkeinTestSupport", path: "Tests/Support"),
        .testTarget(name: "SkeinTransportTests", dependencies: ["SkeinTransport", "SkeinTestSupport", "skein-testpeer"]),
    ]
)
