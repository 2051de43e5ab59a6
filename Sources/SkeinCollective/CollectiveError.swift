import SkeinTransport
import SkeinWire

/// Why a collective failed. A dead or silent peer is always named by its rank.
public enum CollectiveError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A neighbour sent nothing (or took nothing) within the deadline: dead, frozen or partitioned.
    case peerTimeout(rank: Int, operation: String, seconds: Double)
    /// A neighbour's link failed (closed, refused).
    case peerFailed(rank: Int, operation: String, detail: String)
    /// A frame from another group epoch (a stale member) or out of sequence.
    case stalePeer(rank: Int, expectedEpoch: UInt64, gotEpoch: UInt64)
    case outOfSequence(rank: Int, expectedTag: UInt64, gotTag: UInt64)
    case malformed(rank: Int, WireError)
    case invalidGroup(String)
    case cancelled

    public var description: String {
        switch self {
        case let .peerTimeout(rank, op, s): "rank \(rank) did not respond within \(s) s (\(op)): dead, frozen or unreachable"
        case let .peerFailed(rank, op, d): "link to rank \(rank) failed (\(op)): \(d)"
        case let .stalePeer(rank, e, g): "rank \(rank) is from group epoch \(g), this group is epoch \(e): refused"
        case let .outOfSequence(rank, e, g): "rank \(rank) sent tag \(g), expected \(e)"
        case let .malformed(rank, e): "malformed frame from rank \(rank): \(e)"
        case let .invalidGroup(d): "invalid group: \(d)"
        case .cancelled: "cancelled"
        }
    }
}
