import Crypto
import SkeinWire

/// Challenge–response proof that a peer knows the cluster's join token, without the token
/// ever crossing the wire: proof = HMAC-SHA256(token, nonce ‖ role ‖ name).
public enum Authentication {
    /// A fresh 32-byte nonce from the system's secure generator.
    public static func nonce() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    public static func proof(token: [UInt8], nonce: [UInt8], role: Role, name: String) -> [UInt8] {
        var data = nonce
        data.append(role.rawValue)
        data.append(contentsOf: Array(name.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: token))
        return Array(mac)
    }

    /// Constant-time check of a proof.
    public static func verify(proof: [UInt8], token: [UInt8], nonce: [UInt8], role: Role, name: String) -> Bool {
        var data = nonce
        data.append(role.rawValue)
        data.append(contentsOf: Array(name.utf8))
        return HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: data, using: SymmetricKey(data: token))
    }

    /// SHA-256 of bytes, as lowercase hex (config and data set hashes).
    public static func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
        SHA256.hash(data: Array(bytes)).map { String(($0 >> 4) & 0xF, radix: 16) + String($0 & 0xF, radix: 16) }.joined()
    }
}
