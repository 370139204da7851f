//! Why a key, a certificate or a key store entry was refused.

/// A private key, certificate or PKCS#12 file could not be loaded, or a key store entry was
/// refused. No variant holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a PEM, PKCS#8 DER, PKCS#1 DER or PKCS#12 key.
    #[error("not a recognised key format (expected PKCS#8 or PKCS#1 PEM, PKCS#8 DER or PKCS#12)")]
    UnrecognizedFormat,
    /// The PEM holds a password-protected `ENCRYPTED PRIVATE KEY`.
    #[error("the PEM key is encrypted; decrypt it first or use a PKCS#12 file with its password")]
    EncryptedPem,
    /// The input holds no private key (for example a PEM with only certificates).
    #[error("no private key found")]
    NoPrivateKey,
    /// The input holds more than one private key.
    #[error("more than one private key found; give one key per certificate id")]
    SeveralPrivateKeys,
    /// The key is not an RSA key.
    #[error("not an RSA key (Graph wraps keys with RSA-OAEP)")]
    NotRsa,
    /// The key is malformed.
    #[error("malformed RSA private key: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The key size is outside what the crate reads (2048 to 16384 bits). A provider may take
    /// fewer: AWS-LC takes 2048 to 8192 bits, and refuses a larger key with
    /// [`KeyError::Provider`] when it is loaded.
    #[error("RSA key of {bits} bits; 2048 to 16384 bits are accepted")]
    UnsupportedKeySize {
        /// Size of the modulus in bits.
        bits: usize,
    },
    /// The certificate is malformed or not an X.509 certificate.
    #[error("malformed certificate: {reason}")]
    BadCertificate {
        /// What is wrong.
        reason: &'static str,
    },
    /// The certificate's public key does not belong to the private key.
    #[error("the certificate's public key does not match the private key")]
    CertificateMismatch,
    /// The PKCS#12 file is malformed or uses an unsupported algorithm.
    #[error("PKCS#12: {reason}")]
    Pkcs12 {
        /// What is wrong.
        reason: &'static str,
    },
    /// The PKCS#12 password is wrong (its integrity MAC or decryption failed).
    #[error("PKCS#12: wrong password or corrupted file")]
    Pkcs12Password,
    /// The `encryptionCertificateId` is empty or longer than 128 characters.
    #[error("a certificate id must be 1 to 128 characters, got {len}")]
    BadCertificateId {
        /// Its length in characters.
        len: usize,
    },
    /// The crypto provider refused the key.
    #[error("the crypto provider refused the key: {reason}")]
    Provider {
        /// The provider's reason.
        reason: &'static str,
    },
}
