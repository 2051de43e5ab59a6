/// Where the ranks of a data-parallel group listen for their ring links, and in which order
/// the ranks go round the ring. Pure: the coordinator passes the hosts its workers advertise,
/// the group epoch and the ports its other running groups hold, and sends the result to every
/// rank.
///
/// Rank r listens for rank r − 1 only, so each link picks its own transport: an `ipc://` path
/// named by the epoch when r − 1 runs on r's host (the shared-memory fast path), else
/// `tcp://HOST:PORT`. `ringOrder` puts the ranks of one host next to each other, so a group
/// of 2 hosts × 2 ranks has two links within hosts (shared memory) and two across (each host's
/// network carries one stream each way, not two).
///
/// TCP ports come from `ports`: a configurable range (for firewalls) that by default lies below
/// Linux's ephemeral range (32768–60999), so no outgoing connection can be holding one. A
/// rank's port starts at a place picked by the epoch and moves on past the ports already taken
/// by this group or another running one, on any host: a rank listens on every interface
/// (`RingGroup.listenAddress`), and workers on one machine may advertise different addresses
/// of it.
public enum GroupAddresses {
    /// The default port range: below the ephemeral range, so no outgoing connection holds one.
    public static let defaultPorts = 20000...32767

    /// The order of the ranks round the ring, as indices into `hosts`: the ranks of each host
    /// together, hosts in order of first appearance, and within a host in the given order.
    /// Index 0 stays first (its worker holds the lease and reports for the group).
    public static func ringOrder(hosts: [String]) -> [Int] {
        var firstSeen: [String: Int] = [:]
        for (i, h) in hosts.enumerated() where firstSeen[h] == nil { firstSeen[h] = i }
        return hosts.indices.sorted { (firstSeen[hosts[$0]]!, $0) < (firstSeen[hosts[$1]]!, $1) }
    }

    /// Every rank's address, in rank order, and the TCP ports they take (empty when every link
    /// stays on one host).
    public static func assign(hosts: [String], epoch: UInt64, ports: ClosedRange<Int>,
                              taken: Set<Int>) -> (peers: [String], ports: [Int]) {
        let n = hosts.count
        let count = ports.count
        var used = taken
        var chosen: [Int] = []
        var peers: [String] = []
        for r in hosts.indices {
            if hosts[(r + n - 1) % n] == hosts[r] {
                peers.append("ipc:///tmp/skein-group-\(String(epoch, radix: 16))-\(r).ipc")
                continue
            }
            let start = Int((epoch &+ UInt64(r)) % UInt64(count))
            // The first free port from `start` on; if the whole range is taken (more ranks
            // running than ports), the start itself: its listen fails and the attempt is
            // handed back, as for any other failure to form the group.
            let offset = (0..<count).first { !used.contains(ports.lowerBound + (start + $0) % count) } ?? 0
            let port = ports.lowerBound + (start + offset) % count
            used.insert(port)
            chosen.append(port)
            peers.append("tcp://\(urlHost(hosts[r])):\(port)")
        }
        return (peers, chosen)
    }

    /// How the ring's links travel, for logs and events: "ipc", "tcp", or "tcp+ipc" (tcp
    /// between hosts, ipc within them).
    public static func transports(_ peers: [String]) -> String {
        let tcp = peers.contains { $0.hasPrefix("tcp://") }, ipc = peers.contains { $0.hasPrefix("ipc://") }
        return tcp && ipc ? "tcp+ipc" : tcp ? "tcp" : "ipc"
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
