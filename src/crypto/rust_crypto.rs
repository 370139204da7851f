//! The pure-Rust provider: `rsa`, `aes` + `cbc`, `hmac` + `sha2` from RustCrypto, and
//! `jsonwebtoken`'s RustCrypto verifier for RS256, named explicitly rather than through
//! jsonwebtoken's process-wide default.
//!
//! RSA decryption is blinded with fresh randomness from the operating system on every call, which
//! is this backend's defence against timing side channels in the big-integer arithmetic (see the
//! crate's security notes on RUSTSEC-2023-0071).

use hmac::{Hmac, Mac};
use rand_core::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use sha1::Sha1;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::aes_cbc::aes256_cbc_decrypt;
use super::KeyError;
use super::{CryptoFailure, CryptoProvider, PrivateKey, Rs256PublicKey, RsaOaepSha1Key};

/// The pure-Rust crypto provider (RustCrypto). The default.
pub const RUST_CRYPTO: CryptoProvider = CryptoProvider {
    name: "rust-crypto",
    load_rsa_private_key: load,
    hmac_sha256,
    aes256_cbc_decrypt,
    load_rs256_public_key,
};

struct Key(RsaPrivateKey);

fn load(key: &PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError> {
    let mut k = RsaPrivateKey::from_pkcs1_der(key.expose_secret_pkcs1_der()).map_err(|_| {
        KeyError::Malformed {
            reason: "rejected by the rsa crate",
        }
    })?;
    k.validate().map_err(|_| KeyError::Malformed {
        reason: "inconsistent RSA key components",
    })?;
    // CRT values, computed once here rather than on every decryption.
    k.precompute().map_err(|_| KeyError::Malformed {
        reason: "cannot precompute CRT values",
    })?;
    Ok(Box::new(Key(k)))
}

impl RsaOaepSha1Key for Key {
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure> {
        let plain = self
            .0
            .decrypt_blinded(&mut OsRng, Oaep::new::<Sha1>(), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| CryptoFailure)?;
        if plain.len() != 32 {
            return Err(CryptoFailure);
        }
        out.copy_from_slice(&plain);
        Ok(())
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A JWKS key; `jsonwebtoken`'s RustCrypto verifier checks each signature.
struct JwtKey(jsonwebtoken::DecodingKey);

fn load_rs256_public_key(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<Box<dyn Rs256PublicKey>, KeyError> {
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(modulus, exponent);
    // Fail at load time, not at the first token, if the backend refuses the key.
    (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(
        &jsonwebtoken::Algorithm::RS256,
        &key,
    )
    .map_err(|_| KeyError::Provider {
        reason: "not a usable RS256 key",
    })?;
    Ok(Box::new(JwtKey(key)))
}

impl Rs256PublicKey for JwtKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(
            &jsonwebtoken::Algorithm::RS256,
            &self.0,
        )
        .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
    }
}
