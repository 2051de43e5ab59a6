import CNNG
#if canImport(Glibc)
import Glibc
#endif

/// Files for `tls+tcp://` endpoints (PEM). A listener presents `certificate`/`key` and, when
/// `requirePeerCertificate` is set, verifies clients against `certificateAuthority`; a dialer
/// verifies the server against `certificateAuthority` and may present its own certificate.
public struct TLSConfiguration: Sendable, Equatable {
    public var certificatePath: String?
    public var keyPath: String?
    public var certificateAuthorityPath: String?
    /// The name the server's certificate must carry (dialers); defaults to the URL's host.
    public var serverName: String?
    public var requirePeerCertificate: Bool

    public init(certificatePath: String? = nil, keyPath: String? = nil, certificateAuthorityPath: String? = nil,
                serverName: String? = nil, requirePeerCertificate: Bool = true) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.certificateAuthorityPath = certificateAuthorityPath
        self.serverName = serverName
        self.requirePeerCertificate = requirePeerCertificate
    }

    /// Builds an nng TLS configuration; the caller releases it with `nng_tls_config_free`
    /// once the endpoint holds its own reference.
    func make(server: Bool, address: String) throws(TransportError) -> OpaquePointer {
        var cfg: OpaquePointer?
        try check(nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT), "TLS configuration", address: address)
        let c = cfg!
        do throws(TransportError) {
            if let ca = certificateAuthorityPath {
                let pem = try Self.read(ca)
                try check(nng_tls_config_ca_chain(c, pem, nil), "TLS CA \(ca)", address: address)
            }
            if let cert = certificatePath, let key = keyPath {
                let certPEM = try Self.read(cert), keyPEM = try Self.read(key)
                try check(nng_tls_config_own_cert(c, certPEM, keyPEM, nil), "TLS certificate \(cert)", address: address)
            }
            if let name = serverName {
                try check(nng_tls_config_server_name(c, name), "TLS server name", address: address)
            }
            let mode = requirePeerCertificate ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE
            try check(nng_tls_config_auth_mode(c, mode), "TLS auth mode", address: address)
        } catch {
            nng_tls_config_free(c)
            throw error
        }
        return c
    }

    private static func read(_ path: String) throws(TransportError) -> String {
        guard let f = fopen(path, "rb") else { throw TransportError(.fileUnreadable(path: path), operation: "TLS") }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
