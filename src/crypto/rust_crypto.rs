//! The pure-Rust provider: `rsa`, `aes` + `cbc`, and `sha2`'s SHA-256 compression function (for
//! HMAC, so that its key-derived state can be wiped) from RustCrypto, and `jsonwebtoken`'s
//! RustCrypto verifier for RS256, named explicitly rather than through jsonwebtoken's
//! process-wide default.
//!
//! RSA decryption is blinded with fresh randomness from the operating system on every call, which
//! is this backend's defence against timing side channels in the big-integer arithmetic (see the
//! crate's security notes on RUSTSEC-2023-0071).

use rand_core::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use sha1::Sha1;
use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroizing;

use super::aes_cbc::aes256_cbc_decrypt;
use super::KeyError;
use super::{CryptoFailure, CryptoProvider, PrivateKey, Rs256PublicKey, RsaOaepSha1Key};

/// The pure-Rust crypto provider (RustCrypto), for targets without a C compiler: opt in with the
/// `rust-crypto` feature. The default provider is `AWS_LC` (feature `aws-lc`); this one's `rsa`
/// crate carries RUSTSEC-2023-0071 (see the crate's security notes).
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

/// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256's block size, in bytes.
const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) over `sha2`'s compression function rather than through the `hmac`
/// crate: `hmac` 0.12 and `sha2` 0.10 have no `zeroize` feature and leave the padded key and
/// the key-derived inner and outer states in memory they do not wipe. Here every value derived
/// from the key (the padded key block, both chaining states, the inner digest, the last
/// blocks) is in a buffer zeroized on drop. The compression function is `sha2`'s own; the
/// tests check this against RFC 4231's vectors and against the `hmac` crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        // A key longer than a block is hashed first (RFC 2104, section 2).
        let mut state = Zeroizing::new(SHA256_IV);
        let digest = Zeroizing::new(sha256_finish(&mut state, 0, key));
        block[..digest.len()].copy_from_slice(&*digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut state = Zeroizing::new(SHA256_IV);
    block.iter_mut().for_each(|b| *b ^= 0x36);
    compress(&mut state, &block[..]);
    let inner = Zeroizing::new(sha256_finish(&mut state, BLOCK as u64, message));
    // From the inner pad to the outer one: K ^ 0x36 ^ (0x36 ^ 0x5c) = K ^ 0x5c.
    block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
    *state = SHA256_IV;
    compress(&mut state, &block[..]);
    sha256_finish(&mut state, BLOCK as u64, &inner[..])
}

/// One compression of a 64-byte block into `state`.
fn compress(state: &mut [u32; 8], block: &[u8]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// SHA-256 of `done` bytes already compressed into `state`, then `data`: compresses `data`,
/// pads (FIPS 180-4, 5.1.1), and returns the digest. The last blocks, which hold the end of
/// `data`, are wiped.
fn sha256_finish(state: &mut [u32; 8], done: u64, data: &[u8]) -> [u8; 32] {
    let mut blocks = data.chunks_exact(BLOCK);
    for block in &mut blocks {
        compress(state, block);
    }
    let rest = blocks.remainder();
    let mut tail = Zeroizing::new([0u8; 2 * BLOCK]);
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    // The message length in bits, modulo 2^64 as the standard has it.
    let bits = done.wrapping_add(data.len() as u64).wrapping_mul(8);
    let end = if rest.len() < BLOCK - 8 {
        BLOCK
    } else {
        2 * BLOCK
    };
    tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..end].chunks_exact(BLOCK) {
        compress(state, block);
    }
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state.iter()) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{hmac_sha256, sha256_finish, SHA256_IV};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231, test cases 1 to 4, 6 and 7 (5 truncates the tag).
    #[test]
    fn hmac_matches_rfc_4231() {
        let long_key = [0xaa; 131];
        let key4: Vec<u8> = (1..=25).collect();
        let cases: [(&[u8], &[u8], &str); 6] = [
            (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (&[0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (&key4, &[0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (&long_key, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (i, (key, message, tag)) in cases.into_iter().enumerate() {
            assert_eq!(hex(&hmac_sha256(key, message)), tag, "case {}", i + 1);
        }
    }

    /// The padding at every length around the block boundaries, against `sha2`'s own SHA-256.
    #[test]
    fn sha256_matches_sha2() {
        use sha2::Digest as _;
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let mut state = SHA256_IV;
            let ours = sha256_finish(&mut state, 0, &data[..len]);
            let theirs: [u8; 32] = sha2::Sha256::digest(&data[..len]).into();
            assert_eq!(ours, theirs, "length {len}");
        }
    }

    /// Every key length around the block size, and messages around the block boundaries,
    /// against the other implementations compiled in.
    #[test]
    #[cfg(any(feature = "pkcs12", feature = "aws-lc"))]
    fn hmac_matches_the_other_implementations() {
        let bytes: Vec<u8> = (0..400u32).map(|i| (i * 13 + 5) as u8).collect();
        for key_len in [0, 1, 16, 31, 32, 33, 63, 64, 65, 100, 128, 129, 200] {
            for msg_len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
                let (key, message) = (&bytes[..key_len], &bytes[100..100 + msg_len]);
                let ours = hmac_sha256(key, message);
                #[cfg(feature = "pkcs12")]
                {
                    use hmac::Mac as _;
                    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
                        .expect("any key length");
                    mac.update(message);
                    let theirs: [u8; 32] = mac.finalize().into_bytes().into();
                    assert_eq!(ours, theirs, "hmac crate, key {key_len}, message {msg_len}");
                }
                #[cfg(feature = "aws-lc")]
                {
                    let theirs = (crate::crypto::AWS_LC.hmac_sha256)(key, message);
                    assert_eq!(ours, theirs, "aws-lc, key {key_len}, message {msg_len}");
                }
            }
        }
    }
}
