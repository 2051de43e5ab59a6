#if canImport(Glibc)
import Glibc
#endif

/// A shared-memory file (in `/dev/shm`) mapped into this process: the window through which a
/// rank hands tensor payloads to its neighbour on the same host. The nng frame then carries only
/// the header, so a payload crosses with one copy in and one read out instead of a copy into an
/// nng message and two kernel copies through a socket.
///
/// The sender creates and writes it; the receiver maps it read-only on the first frame that
/// points into it and unlinks the name at once, so nothing is left in `/dev/shm` once both ends
/// have it mapped (the sender also unlinks its names when the group closes or fails).
final class SharedWindow {
    let path: String
    let base: UnsafeMutableRawPointer
    let size: Int

    private init(path: String, base: UnsafeMutableRawPointer, size: Int) {
        self.path = path; self.base = base; self.size = size
    }

    deinit { munmap(base, size) }

    /// The name of the window a sender uses for the link into `address` (the receiver's listen
    /// address) in group `epoch`: both ends derive it without exchanging it.
    static func path(receiver address: String, epoch: UInt64, generation: UInt16) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for byte in address.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return "/dev/shm/skein-\(String(repeating: "0", count: 16 - hex.count))\(hex)-e\(epoch)-g\(generation)"
    }

    /// Creates (or replaces) the file and reserves its memory up front: a tmpfs too small for it
    /// (Docker and Kubernetes give 64 MiB by default) fails here with an error, rather than with
    /// SIGBUS on the first write.
    static func create(path: String, size: Int) throws(SharedWindowError) -> SharedWindow {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SharedWindowError(path: path, operation: "create", code: errno) }
        defer { close(fd) }
        let reserved = posix_fallocate(fd, 0, off_t(size))
        guard reserved == 0 else {
            unlink(path)
            throw SharedWindowError(path: path, operation: "reserve \(size) bytes", code: reserved)
        }
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            let code = errno
            unlink(path)
            throw SharedWindowError(path: path, operation: "map", code: code)
        }
        return SharedWindow(path: path, base: base, size: size)
    }

    /// Maps a neighbour's window read-only and removes its name.
    static func attach(path: String) throws(SharedWindowError) -> SharedWindow {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SharedWindowError(path: path, operation: "open", code: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SharedWindowError(path: path, operation: "stat", code: errno) }
        let size = Int(info.st_size)
        guard size > 0, let base = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw SharedWindowError(path: path, operation: "map", code: errno)
        }
        unlink(path)
        return SharedWindow(path: path, base: base, size: size)
    }
}

struct SharedWindowError: Error, CustomStringConvertible {
    let path: String
    let operation: String
    let code: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}
