import CNNG

/// The scalability protocols Skein uses, and what each is for.
///
/// - `request`/`reply`: control RPC (worker ↔ coordinator, CLI ↔ coordinator). Contexts let
///   one socket carry many requests at once, each matched to its reply.
/// - `push`/`pull`: one-way streams with backpressure (metric batches to the coordinator).
/// - `pair`: a single peer-to-peer link (neighbours in a ring allreduce).
/// - `publish`/`subscribe`: broadcast from the coordinator (sweep cancelled, shutting down).
///   Chosen over survey because broadcasts here need no answer; anything that needs one
///   goes over request/reply, where the requester controls retries.
public enum Pattern: String, Sendable, CaseIterable {
    case request, reply, push, pull, pair, publish, subscribe

    func open() throws(TransportError) -> nng_socket {
        var s = nng_socket()
        let rv: Int32
        switch self {
        case .request: rv = nng_req0_open(&s)
        case .reply: rv = nng_rep0_open(&s)
        case .push: rv = nng_push0_open(&s)
        case .pull: rv = nng_pull0_open(&s)
        case .pair: rv = nng_pair1_open(&s)
        case .publish: rv = nng_pub0_open(&s)
        case .subscribe: rv = nng_sub0_open(&s)
        }
        try check(rv, "open \(rawValue) socket")
        return s
    }

    /// Whether a non-blocking send that fails (nothing could take the message at once) leaves
    /// the socket as it was, so the send can be retried on an aio. Not for reply sockets:
    /// nng's rep0 forgets the request it answers as soon as a send starts ("exactly one send
    /// per receive"), so the retry fails with NNG_ESTATE and the requester never gets its
    /// reply (seen: the req/rep benchmark timing out, 1 run in about 25 over tcp).
    var keepsStateOnFailedSend: Bool { self != .reply }

    /// Whether a non-blocking receive that finds nothing leaves the socket as it was. Not for
    /// request sockets: nng's req0 treats a cancelled or expired receive as abandoning the
    /// request, so its reply would be dropped.
    var keepsStateOnFailedReceive: Bool { self != .request }

    /// Patterns whose sockets support independent contexts (`nng_ctx`).
    var supportsContexts: Bool { self == .request || self == .reply || self == .subscribe }
}
