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

    /// Patterns whose sockets support independent contexts (`nng_ctx`).
    var supportsContexts: Bool { self == .request || self == .reply || self == .subscribe }
}
