//! The app's encryption key: Graph encrypts resource data for its certificate. Made on the first
//! start under the data directory (RSA-2048, self-signed, which Graph accepts), or loaded from a
//! PEM file holding the private key and its certificate.

use std::io::Write;
use std::path::Path;

use graph_chat_webhook::core::crypto::PrivateKey;

use crate::AppError;

/// The file under the data directory.
pub const KEY_FILE: &str = "app-key.pem";

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
pub fn load(path: &Path) -> Result<AppKey, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    let key = PrivateKey::from_pem(&text)
        .map_err(|e| AppError::Key(format!("{}: {e}", path.display())))?;
    let certificate = key
        .certificate()
        .ok_or_else(|| {
            AppError::Key(format!(
                "{}: no certificate beside the key (Graph needs it to encrypt)",
                path.display()
            ))
        })?
        .clone();
    Ok(AppKey {
        certificate_id: format!("chat-app-{}", &certificate.thumbprint_hex()[..16]),
        certificate: certificate.der().to_vec(),
        key,
    })
}

/// The key under `data`, made first if there is none.
pub fn load_or_create(data: &Path) -> Result<AppKey, AppError> {
    let path = data.join(KEY_FILE);
    if !path.exists() {
        let pem = create()?;
        let tmp = data.join(format!("{KEY_FILE}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|source| AppError::Io {
            what: format!("cannot write {}", tmp.display()),
            source,
        })?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| AppError::Io {
                what: format!("cannot write {}", path.display()),
                source,
            })?;
    }
    load(&path)
}

/// A new RSA-2048 key and a self-signed certificate for it, as PEM (key, then certificate).
fn create() -> Result<String, AppError> {
    let bad = |e: rcgen::Error| AppError::Key(format!("cannot make the app's key: {e}"));
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(bad)?;
    let params = rcgen::CertificateParams::new(vec!["graph-chat-app".to_owned()]).map_err(bad)?;
    let certificate = params.self_signed(&key_pair).map_err(bad)?;
    let key_pem = zeroize::Zeroizing::new(key_pair.serialize_pem());
    Ok(format!("{}{}", key_pem.as_str(), certificate.pem()))
}

/// A new random secret (the `clientState`): 32 bytes from the OS, as hex.
pub fn random_secret() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
