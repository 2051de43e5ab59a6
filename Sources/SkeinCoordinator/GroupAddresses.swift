/// Where the ranks of a data-parallel group listen for their ring links. Pure: the coordinator
/// passes the hosts its workers advertise, the group epoch and the ports its other running
/// groups hold, and sends the result to every rank.
///
/// All ranks on one host: `ipc://` paths named by the epoch (the shared-memory fast path).
/// Otherwise `tcp://HOST:PORT` per rank, the ports from `ports`: a configurable range (for
/// firewalls) that by default lies below Linux's ephemeral range (32768–60999), so no
/// outgoing connection can be holding one. A rank's port starts at a place picked by the epoch
/// and moves on past the ports already taken by this group or another running one, on any
/// host: a rank listens on every interface (`RingGroup.listenAddress`), and workers on one
/// machine may advertise different addresses of it.
public enum GroupAddresses {
    /// The default port range: below the ephemeral range, so no outgoing connection holds one.
    public static let defaultPorts = 20000...32767

    /// Every rank's address, in rank order, and the TCP ports they take (empty for ipc://).
    public static func assign(hosts: [String], epoch: UInt64, ports: ClosedRange<Int>,
                              taken: Set<Int>) -> (peers: [String], ports: [Int]) {
        if Set(hosts).count <= 1 {
            return ((0..<hosts.count).map { "ipc:///tmp/skein-group-\(String(epoch, radix: 16))-\($0).ipc" }, [])
        }
        let count = ports.count
        var used = taken
        var chosen: [Int] = []
        for r in hosts.indices {
            let start = Int((epoch &+ UInt64(r)) % UInt64(count))
            // The first free port from `start` on; if the whole range is taken (more ranks
            // running than ports), the start itself: its listen fails and the attempt is
            // handed back, as for any other failure to form the group.
            let offset = (0..<count).first { !used.contains(ports.lowerBound + (start + $0) % count) } ?? 0
            let port = ports.lowerBound + (start + offset) % count
            used.insert(port)
            chosen.append(port)
        }
        return (zip(hosts, chosen).map { "tcp://\(urlHost($0)):\($1)" }, chosen)
    }

    /// An IPv6 literal goes in brackets in a URL (`tcp://[::1]:20000`).
    static func urlHost(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }

    /// Parses a port range written `LOW-HIGH` (1024 ≤ LOW ≤ HIGH ≤ 65535, at least 64 ports).
    public static func parsePorts(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]),
              low >= 1024, high <= 65535, high - low + 1 >= 64 else { return nil }
        return low...high
    }
}
