import Foundation

/// A second "host" on this machine: a network namespace joined to the host's by a veth pair,
/// with its own address, and a link that can be cut (`ip netns`, root only). The host side is
/// `hostAddress`, the namespace side `address`; processes run inside through `launcher`.
final class NetworkNamespace: Sendable {
    let name: String
    let hostLink: String
    let hostAddress: String
    let address: String

    /// Whether this process may make namespaces (root, or CAP_NET_ADMIN).
    static let available: Bool = {
        let probe = "skein-probe-\(getpid())"
        defer { _ = try? run(["netns", "del", probe]) }
        return (try? run(["netns", "add", probe])) != nil
    }()

    /// Makes namespace `skein-N` with veth `sk-hN` (host, 10.201.N.1) ↔ `sk-nN` (inside, 10.201.N.2).
    init(index: Int) throws {
        name = "skein-\(index)"
        hostLink = "sk-h\(index)"
        hostAddress = "10.201.\(index).1"
        address = "10.201.\(index).2"
        let inner = "sk-n\(index)"
        _ = try? Self.run(["netns", "del", name])
        _ = try? Self.run(["link", "del", hostLink])
        try Self.run(["netns", "add", name])
        try Self.run(["link", "add", hostLink, "type", "veth", "peer", "name", inner])
        try Self.run(["link", "set", inner, "netns", name])
        try Self.run(["addr", "add", "\(hostAddress)/24", "dev", hostLink])
        try Self.run(["link", "set", hostLink, "up"])
        try Self.run(["netns", "exec", name, "ip", "addr", "add", "\(address)/24", "dev", inner])
        try Self.run(["netns", "exec", name, "ip", "link", "set", inner, "up"])
        try Self.run(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
    }

    /// Runs a command inside the namespace (for `ChildProcess(launcher:)`).
    var launcher: [String] { ["/usr/sbin/ip", "netns", "exec", name] }

    /// Cuts (false) or restores (true) the link between the namespace and the host.
    func setLink(up: Bool) throws { try Self.run(["link", "set", hostLink, up ? "up" : "down"]) }

    deinit {
        // Deleting one end of a veth pair deletes both; the namespace itself goes once its last
        // socket has (TCP TIME_WAIT can hold it for a minute).
        _ = try? Self.run(["link", "del", hostLink])
        _ = try? Self.run(["netns", "del", name])
    }

    @discardableResult
    static func run(_ arguments: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ClusterError("ip \(arguments.joined(separator: " ")) exited \(p.terminationStatus)") }
        return 0
    }
}
