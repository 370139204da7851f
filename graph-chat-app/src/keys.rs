//! The app's encryption key: Graph encrypts resource data for its certificate. Made on the first
//! start under the data directory (RSA-2048, self-signed, which Graph accepts), or loaded from a
//! PEM file holding the private key and its certificate.

use std::io::Write;
use std::path::Path;

use graph_chat_webhook::notifications::crypto::{Certificate, PrivateKey};

/// Why the app's key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The key or its certificate is not usable (named by where it came from).
    #[error("{0}")]
    Invalid(String),
}

/// The private key's file under the data directory (PKCS#8 DER, readable by its owner only).
pub const KEY_FILE: &str = "app-key.der";
/// The certificate's file under the data directory (DER).
pub const CERTIFICATE_FILE: &str = "app-cert.der";

/// A key, its certificate, and the id subscriptions name it by.
pub struct AppKey {
    /// The private key.
    pub key: PrivateKey,
    /// The certificate (DER) sent when subscribing.
    pub certificate: Vec<u8>,
    /// `encryptionCertificateId`: derived from the certificate's thumbprint, so a new key gets a
    /// new id (and notifications for the old one are told apart).
    pub certificate_id: String,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

/// Loads a PEM file with a private key (PKCS#8 or PKCS#1) and its certificate.
pub fn load(path: &Path) -> Result<AppKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    let key = PrivateKey::from_pem(&text)
        .map_err(|e| KeyError::Invalid(format!("{}: {e}", path.display())))?;
    with_id(key, &path.display().to_string())
}

fn with_id(key: PrivateKey, source: &str) -> Result<AppKey, KeyError> {
    let certificate = key
        .certificate()
        .ok_or_else(|| {
            KeyError::Invalid(format!(
                "{source}: no certificate beside the key (Graph needs it to encrypt)"
            ))
        })?
        .clone();
    Ok(AppKey {
        certificate_id: format!("chat-app-{}", &certificate.thumbprint_hex()[..16]),
        certificate: certificate.der().to_vec(),
        key,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })
}

/// Writes `bytes` to `path` at once (a temporary file, synced, then renamed), readable by its
/// owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| KeyError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })
}

/// The key under `data`, made first if there is none.
pub fn load_or_create(data: &Path) -> Result<AppKey, KeyError> {
    let (key_path, certificate_path) = (data.join(KEY_FILE), data.join(CERTIFICATE_FILE));
    if !key_path.exists() || !certificate_path.exists() {
        let (key, certificate) = create()?;
        // The certificate first: a key without it is made again on the next start.
        write_private(&certificate_path, &certificate)?;
        write_private(&key_path, &key)?;
    }
    let key = zeroize::Zeroizing::new(read(&key_path)?);
    let bad = |e: &dyn std::fmt::Display| KeyError::Invalid(format!("{}: {e}", data.display()));
    let certificate = Certificate::from_der(&read(&certificate_path)?).map_err(|e| bad(&e))?;
    let key = PrivateKey::from_pkcs8_der(&key)
        .and_then(|k| k.with_certificate(certificate))
        .map_err(|e| bad(&e))?;
    with_id(key, &data.display().to_string())
}

/// A new RSA-2048 key (PKCS#8 DER) and a self-signed certificate for it (DER).
fn create() -> Result<(zeroize::Zeroizing<Vec<u8>>, Vec<u8>), KeyError> {
    let bad = |e: rcgen::Error| KeyError::Invalid(format!("cannot make the app's key: {e}"));
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(bad)?;
    let params = rcgen::CertificateParams::new(vec!["graph-chat-app".to_owned()]).map_err(bad)?;
    let certificate = params.self_signed(&key_pair).map_err(bad)?;
    Ok((
        zeroize::Zeroizing::new(key_pair.serialize_der()),
        certificate.der().to_vec(),
    ))
}

/// A new random secret (the `clientState`): 32 bytes from the OS, as hex.
pub fn random_secret() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
