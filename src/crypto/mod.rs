//! Keys, the crypto-provider seam, and the decrypt-and-verify core.
//!
//! * [`PrivateKey`] and [`Certificate`] read the formats users hold keys in.
//! * [`KeyStore`] holds keys by `encryptionCertificateId` (several at once, for rotation).
//! * [`CryptoProvider`] is the seam between the crate and a crypto backend: the few primitives
//!   Graph's scheme needs. `AWS_LC` (feature `aws-lc`, on by default) runs on AWS-LC, with
//!   constant-time RSA at OpenSSL's speed; `RUST_CRYPTO` (feature `rust-crypto`, opt-in) is
//!   pure Rust, for targets without a C compiler, and carries the `rsa` crate's timing advisory
//!   (RUSTSEC-2023-0071). [`default_provider`] picks between them; a caller can name either, or
//!   bring its own.

#[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
mod aes_cbc;
#[cfg(feature = "aws-lc")]
mod aws_lc;
pub(crate) mod ct;
mod decrypt;
mod error;
mod keys;
mod keystore;
#[cfg(feature = "pkcs12")]
mod pkcs12;
#[cfg(feature = "rust-crypto")]
mod rust_crypto;

#[cfg(feature = "aws-lc")]
pub use aws_lc::AWS_LC;
pub(crate) use decrypt::decrypt;
pub use decrypt::{DecryptBuffer, Sealed};
pub use error::KeyError;
pub use keys::{Certificate, PrivateKey};
pub use keystore::KeyStore;
#[cfg(feature = "rust-crypto")]
pub use rust_crypto::RUST_CRYPTO;

use std::fmt;

/// The provider `KeyStore::new` and `TokenValidator::new` use: `AWS_LC` when the `aws-lc`
/// feature is on (the default), else `RUST_CRYPTO`. A plain function of the features: no global
/// state, nothing to install, nothing that can panic when both are compiled in.
///
/// ```
/// let provider = graph_chat_notifications::crypto::default_provider();
/// # #[cfg(feature = "aws-lc")]
/// assert_eq!(provider.name, "aws-lc");
/// ```
#[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
pub fn default_provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc")]
    return &AWS_LC;
    #[cfg(not(feature = "aws-lc"))]
    return &RUST_CRYPTO;
}

/// Loads a key into a provider: [`CryptoProvider::load_rsa_private_key`].
pub type LoadRsaKeyFn = fn(&PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError>;
/// HMAC-SHA256 of a message under a key: [`CryptoProvider::hmac_sha256`].
pub type HmacSha256Fn = fn(key: &[u8], message: &[u8]) -> [u8; 32];
/// AES-256-CBC decryption in place, PKCS#7 removed: [`CryptoProvider::aes256_cbc_decrypt`].
pub type Aes256CbcDecryptFn =
    fn(key: &[u8; 32], iv: &[u8; 16], buf: &mut [u8]) -> Result<usize, CryptoFailure>;

/// Loads an RS256 public key (modulus, exponent; big-endian): [`CryptoProvider::load_rs256_public_key`].
pub type LoadRs256KeyFn =
    fn(modulus: &[u8], exponent: &[u8]) -> Result<Box<dyn Rs256PublicKey>, KeyError>;

/// The primitives Graph's rich-notification scheme needs, from one crypto backend.
///
/// A provider is a plain value of function pointers, named by the caller: there is no global
/// default to install, and two backends compiled in at once never conflict. The crate's own
/// `AWS_LC` and `RUST_CRYPTO` are two; a caller may derive another from one of them with the
/// `with_*` methods (to put a hardware module behind the RSA step, say), which keeps compiling
/// when a later version adds a primitive. The fields can be read, not set directly.
///
/// Contract: every function is a pure computation over its arguments; failures return
/// [`CryptoFailure`] and never panic.
///
/// ```
/// # #[cfg(feature = "aws-lc")] {
/// use graph_chat_notifications::crypto::{CryptoProvider, AWS_LC};
/// static LOGGED: CryptoProvider = AWS_LC.with_name("aws-lc, audited");
/// assert_eq!(LOGGED.name, "aws-lc, audited");
/// # }
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct CryptoProvider {
    /// A short name for logs (`"rust-crypto"`).
    pub name: &'static str,
    /// Prepares an RSA private key for RSA-OAEP (SHA-1) decryption, once, at load time.
    pub load_rsa_private_key: LoadRsaKeyFn,
    /// HMAC-SHA256 of `message` under `key`.
    pub hmac_sha256: HmacSha256Fn,
    /// AES-256-CBC decryption of `buf` in place with PKCS#7 padding removed; returns the length
    /// of the plaintext at the start of `buf`. `buf` is a non-empty multiple of 16 bytes.
    pub aes256_cbc_decrypt: Aes256CbcDecryptFn,
    /// Prepares a JWKS key for checking RS256 signatures of `validationTokens`.
    pub load_rs256_public_key: LoadRs256KeyFn,
}

impl CryptoProvider {
    /// This provider under another name.
    pub const fn with_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// This provider with another RSA private-key loader (the RSA-OAEP step).
    pub const fn with_rsa_private_key_loader(mut self, load: LoadRsaKeyFn) -> Self {
        self.load_rsa_private_key = load;
        self
    }

    /// This provider with another HMAC-SHA256.
    pub const fn with_hmac_sha256(mut self, hmac: HmacSha256Fn) -> Self {
        self.hmac_sha256 = hmac;
        self
    }

    /// This provider with another AES-256-CBC decryption.
    pub const fn with_aes256_cbc_decrypt(mut self, decrypt: Aes256CbcDecryptFn) -> Self {
        self.aes256_cbc_decrypt = decrypt;
        self
    }

    /// This provider with another RS256 public-key loader (the `validationTokens` check).
    pub const fn with_rs256_public_key_loader(mut self, load: LoadRs256KeyFn) -> Self {
        self.load_rs256_public_key = load;
        self
    }
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An RSA private key loaded by a [`CryptoProvider`], ready to unwrap `dataKey` values.
pub trait RsaOaepSha1Key: Send + Sync {
    /// Decrypts an RSA-OAEP ciphertext (SHA-1 digest, MGF1-SHA-1, empty label) into `out`.
    /// A plaintext of any length other than 32 bytes is a failure.
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure>;
}

/// A public key from the identity platform's JWKS, ready to check RS256 (RSASSA-PKCS1-v1_5 with
/// SHA-256) signatures.
pub trait Rs256PublicKey: Send + Sync {
    /// Whether `signature` is a valid RS256 signature of `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// A cryptographic operation failed. Deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CryptoFailure;

impl fmt::Display for CryptoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cryptographic operation failed")
    }
}

impl std::error::Error for CryptoFailure {}
