import Foundation
import SkeinConfig
import SkeinTrain
import SkeinTransport
import Synchronization

/// A content hash of the data a sweep trains on, stored with the sweep so a leaderboard can
/// be traced to the exact data (MLOps: data versioning). Files are hashed once per process.
enum DatasetFingerprint {
    private static let cache = Mutex<[String: String]>([:])

    static func of(_ spec: TrialSpec) -> String {
        guard spec.kind == .builtin, let data = spec.train?.data else { return "none" }
        var files: [String] = []
        switch data.source {
        case .fashionMNIST:
            let dir = data.path ?? DataSource.fashionMNISTDirectory
            files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"].map { "\(dir)/\($0)" }
        case .csv:
            files = [data.path, data.testPath].compactMap { $0 }
        }
        let parts = files.map { path -> String in
            if let h = cache.withLock({ $0[path] }) { return h }
            guard let d = FileManager.default.contents(atPath: path) else { return "missing:\(path)" }
            let h = Authentication.sha256Hex(d)
            cache.withLock { $0[path] = h }
            return h
        }
        return "sha256:" + Authentication.sha256Hex(Array(parts.joined(separator: ",").utf8)).prefix(16) + (data.limit > 0 ? " limit=\(data.limit)" : "")
    }
}
