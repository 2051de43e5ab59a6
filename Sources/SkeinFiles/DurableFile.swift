import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file writes that survive a crash: the bytes go to a temporary file in the same
/// directory, which is fsynced and renamed over the target, and then the directory is fsynced.
/// A crash (or kill -9) at any point leaves either the old file or the new one, never a torn
/// one; a failed write leaves no temporary file behind.
public enum DurableFile {
    /// Why a write failed, and where.
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws(WriteError) {
        // Unique per process and call: two writers of one path (threads, or processes sharing
        // a directory) never write into each other's temporary file.
        let tmp = "\(path).tmp-\(getpid())-\(UUID().uuidString.prefix(8))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw WriteError(path: tmp, reason: "cannot create: \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { buf -> Bool in
            var done = 0
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return fsync(fd) == 0
        }
        let writeErrno = errno
        close(fd)
        guard written else {
            unlink(tmp)
            throw WriteError(path: tmp, reason: "write failed: \(String(cString: strerror(writeErrno)))")
        }
        guard rename(tmp, path) == 0 else {
            let renameErrno = errno
            unlink(tmp)
            throw WriteError(path: path, reason: "rename failed: \(String(cString: strerror(renameErrno)))")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
