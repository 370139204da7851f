//! Secrets at rest: what the app keeps under `--data` that would let someone act as a person or
//! forge notifications (people's refresh tokens, the `clientState`) is sealed with AES-256-GCM
//! under a key of the app's own, in a file readable by the app's user only. A copy of the
//! databases alone gives nothing away.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("secrets-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! use graph_chat_app::secrets::Sealer;
//! let sealer = Sealer::load_or_create(&dir).unwrap();
//! let sealed = sealer.seal("refresh token", b"simrt.example");
//! assert!(!sealed.windows(5).any(|w| w == b"simrt"));
//! assert_eq!(&*sealer.open("refresh token", &sealed).unwrap(), b"simrt.example");
//! // Sealed for one purpose, it opens for no other.
//! assert!(sealer.open("clientState", &sealed).is_none());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rand_core::RngCore;
use zeroize::Zeroizing;

use crate::keys::{write_private, KeyError};

/// The sealing key's file under the data directory (32 random bytes, readable by its owner only).
pub const SEALING_KEY_FILE: &str = "app-secrets.key";

/// The app's sealing key. `Debug` shows nothing of it.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// The key under `data`, made first if there is none.
    pub fn load_or_create(data: &Path) -> Result<Self, KeyError> {
        let path = data.join(SEALING_KEY_FILE);
        if !path.exists() {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand_core::OsRng.fill_bytes(&mut bytes[..]);
            write_private(&path, &bytes[..])?;
        }
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|source| KeyError::Io {
            what: format!("cannot read {}", path.display()),
            source,
        })?);
        Self::from_key(&bytes)
            .ok_or_else(|| KeyError::Invalid(format!("{}: not a 32-byte key", path.display())))
    }

    /// A sealer over a 32-byte key.
    fn from_key(bytes: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `plain` sealed for `purpose` (bound in as associated data): a random nonce, then the
    /// ciphertext and its tag.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        // Sealing a buffer in memory with a fresh nonce cannot fail.
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.as_bytes()),
            &mut body,
        );
        if sealed.is_err() {
            out.clear();
            return out;
        }
        out.extend_from_slice(&body);
        zeroize::Zeroize::zeroize(&mut body);
        out
    }

    /// What `seal(purpose, ..)` sealed; `None` for anything else (another key, another purpose,
    /// a changed byte).
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .ok()?
            .len();
        body.truncate(plain);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    #[test]
    fn a_changed_byte_or_another_key_opens_nothing() {
        let sealer = Sealer::from_key(&[7u8; 32]).unwrap();
        let other = Sealer::from_key(&[8u8; 32]).unwrap();
        let mut sealed = sealer.seal("p", b"secret");
        assert!(other.open("p", &sealed).is_none());
        assert!(sealer.open("p", &sealed[..5]).is_none());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(sealer.open("p", &sealed).is_none());
        assert_eq!(format!("{sealer:?}"), "Sealer([redacted])");
    }

    #[test]
    fn two_seals_of_one_secret_differ() {
        let sealer = Sealer::from_key(&[7u8; 32]).unwrap();
        assert_ne!(sealer.seal("p", b"secret"), sealer.seal("p", b"secret"));
    }
}
