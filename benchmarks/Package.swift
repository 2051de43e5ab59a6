// swift-tools-version: 6.1
// Benchmarks live in their own package so `swift test` at the top never builds them.
import PackageDescription

let package = Package(
    name: "SkeinBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Skein", path: ".."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        .executableTarget(name: "transport-bench", dependencies: [.product(name: "SkeinTransport", package: "Skein")]),
        .executableTarget(name: "store-bench", dependencies: [
            .product(name: "SkeinStore", package: "Skein"), .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .executableTarget(name: "allreduce-bench", dependencies: [
            .product(name: "SkeinCollective", package: "Skein"), .product(name: "SkeinTensor", package: "Skein"),
        ]),
        .executableTarget(name: "update-bench", dependencies: [
            .product(name: "SkeinCollective", package: "Skein"), .product(name: "SkeinTensor", package: "Skein"),
            .product(name: "SkeinTrain", package: "Skein"),
        ]),
        .executableTarget(name: "train-bench", dependencies: [
            .product(name: "SkeinTrain", package: "Skein"), .product(name: "SkeinTensor", package: "Skein"),
        ]),
    ]
)
