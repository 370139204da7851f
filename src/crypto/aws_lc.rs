//! The AWS-LC provider (feature `aws-lc`): RSA, HMAC and RS256 from AWS-LC through `aws-lc-rs`;
//! AES-CBC from the `aes` crate (AES-NI where the CPU has it), which, unlike aws-lc-rs, does not
//! allocate a key object per notification. AWS-LC's RSA is constant-time and several times faster than the pure-Rust
//! `rsa` crate; pick it for throughput, or where the `rsa` timing advisory matters to you.

use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1};
use aws_lc_rs::{hmac, signature};
use zeroize::Zeroize;

use super::aes_cbc::aes256_cbc_decrypt;
use super::KeyError;
use super::{CryptoFailure, CryptoProvider, PrivateKey, Rs256PublicKey, RsaOaepSha1Key};

/// The AWS-LC crypto provider.
///
/// ```
/// use graph_chat_notifications::crypto::{KeyStore, PrivateKey, AWS_LC};
/// let pem = std::fs::read("tests/fixtures/keys/rsa2048/key.pkcs8.pem").unwrap();
/// let keys = KeyStore::with_provider(&AWS_LC).with_key("cert-1", PrivateKey::from_bytes(&pem).unwrap()).unwrap();
/// assert_eq!(keys.provider().name, "aws-lc");
/// ```
pub const AWS_LC: CryptoProvider = CryptoProvider {
    name: "aws-lc",
    load_rsa_private_key: load,
    hmac_sha256,
    aes256_cbc_decrypt,
    load_rs256_public_key,
};

struct Key(OaepPrivateDecryptingKey);

/// The largest RSA key AWS-LC takes, in bits (`aws-lc-rs` refuses larger ones as too large).
const MAX_BITS: usize = 8192;

fn load(key: &PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError> {
    // `PrivateKey` reads keys up to 16384 bits (the RustCrypto provider takes them); say why
    // AWS-LC does not, rather than that it refused.
    if key.bits() > MAX_BITS {
        return Err(KeyError::Provider {
            reason: "AWS-LC takes RSA keys of 2048 to 8192 bits",
        });
    }
    let k = PrivateDecryptingKey::from_pkcs8(key.expose_secret_pkcs8_der()).map_err(|_| {
        KeyError::Provider {
            reason: "AWS-LC refused the RSA key",
        }
    })?;
    let k = OaepPrivateDecryptingKey::new(k).map_err(|_| KeyError::Provider {
        reason: "AWS-LC refused the key for OAEP",
    })?;
    Ok(Box::new(Key(k)))
}

impl RsaOaepSha1Key for Key {
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure> {
        // Room for any plaintext a key AWS-LC takes (8192 bits) can hold; only 32 bytes are
        // acceptable.
        let mut plain = [0u8; MAX_BITS / 8];
        let result = match self
            .0
            .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut plain, None)
        {
            Ok(p) if p.len() == 32 => {
                out.copy_from_slice(p);
                Ok(())
            }
            _ => Err(CryptoFailure),
        };
        plain.zeroize();
        result
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

struct JwtKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

fn load_rs256_public_key(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<Box<dyn Rs256PublicKey>, KeyError> {
    Ok(Box::new(JwtKey {
        n: modulus.to_vec(),
        e: exponent.to_vec(),
    }))
}

impl Rs256PublicKey for JwtKey {
    fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature_bytes,
        )
        .is_ok()
    }
}
