//! Private keys by `encryptionCertificateId`.

use std::fmt;
use std::sync::Arc;

use super::keys::hex_upper;
use super::KeyError;
use super::{CryptoProvider, PrivateKey, RsaOaepSha1Key};

/// The private keys that unwrap `dataKey`, by the `encryptionCertificateId` chosen when
/// subscribing. Several can be live at once: during a rotation keep the old key until no
/// notification names it.
///
/// Keys are loaded into the [`CryptoProvider`] once, when inserted. Cloning a store shares the
/// loaded keys rather than copying them (that is how [`Receiver::update_keys`] rotates keys
/// while the receiver is in use); private key material is zeroized when the last store holding it
/// is dropped. `Debug` lists certificate ids and thumbprints only.
///
/// [`Receiver::update_keys`]: crate::inbound::Receiver::update_keys
///
/// ```
/// # fn main() -> Result<(), graph_chat_notifications::KeyError> {
/// use graph_chat_notifications::crypto::{KeyStore, PrivateKey};
/// let pem = std::fs::read("tests/fixtures/keys/rsa2048/key.pkcs8.pem").unwrap();
/// let mut keys = KeyStore::new();
/// keys.insert("cert-2026-11", PrivateKey::from_bytes(&pem)?)?;
/// assert!(keys.contains("cert-2026-11"));
/// assert!(!format!("{keys:?}").contains("PRIVATE"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyStore {
    provider: &'static CryptoProvider,
    entries: Vec<Entry>,
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) modulus_len: usize,
    pub(crate) thumbprint: Option<[u8; 20]>,
    pub(crate) key: Arc<dyn RsaOaepSha1Key>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct E<'a>(&'a Entry);
        impl fmt::Debug for E<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct("Key");
                d.field("id", &self.0.id)
                    .field("bits", &(self.0.modulus_len * 8));
                if let Some(t) = self.0.thumbprint {
                    d.field("thumbprint", &hex_upper(&t));
                }
                d.finish_non_exhaustive()
            }
        }
        f.debug_struct("KeyStore")
            .field("provider", &self.provider.name)
            .field("keys", &self.entries.iter().map(E).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
impl Default for KeyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyStore {
    /// An empty store using the [default provider](super::default_provider): AWS-LC with the
    /// default features, RustCrypto when only `rust-crypto` is on.
    #[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
    pub fn new() -> Self {
        Self::with_provider(super::default_provider())
    }

    /// An empty store using `provider` for every key and decryption.
    pub fn with_provider(provider: &'static CryptoProvider) -> Self {
        Self {
            provider,
            entries: Vec::new(),
        }
    }

    /// The provider this store decrypts with.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    /// Adds `key` under `certificate_id`, replacing any key already there (a renewed certificate
    /// that kept its id). The id is what the subscription named as `encryptionCertificateId`:
    /// 1 to 128 characters.
    pub fn insert(
        &mut self,
        certificate_id: impl Into<String>,
        key: PrivateKey,
    ) -> Result<(), KeyError> {
        let id = certificate_id.into();
        crate::check_graph_id_len(&id).map_err(|len| KeyError::BadCertificateId { len })?;
        let entry = Entry {
            modulus_len: key.modulus_len(),
            thumbprint: key.certificate().map(|c| c.thumbprint()),
            key: Arc::from((self.provider.load_rsa_private_key)(&key)?),
            id,
        };
        match self.entries.iter_mut().find(|e| e.id == entry.id) {
            Some(slot) => *slot = entry,
            None => self.entries.push(entry),
        }
        Ok(())
    }

    /// [`insert`](Self::insert), by value, for building a store in one expression.
    pub fn with_key(
        mut self,
        certificate_id: impl Into<String>,
        key: PrivateKey,
    ) -> Result<Self, KeyError> {
        self.insert(certificate_id, key)?;
        Ok(self)
    }

    /// Removes the key under `certificate_id` (a rotation is over). Returns whether it was there.
    pub fn remove(&mut self, certificate_id: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != certificate_id);
        before != self.entries.len()
    }

    /// Whether a key is stored under `certificate_id`.
    pub fn contains(&self, certificate_id: &str) -> bool {
        self.get(certificate_id).is_some()
    }

    /// The certificate ids, in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get(&self, certificate_id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == certificate_id)
    }
}
