//! Private keys and certificates, read from the formats users hold them in, independent of the
//! crypto backend that will use them.

use std::fmt;

use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::KeyError;

const MIN_BITS: usize = 2048;
const MAX_BITS: usize = 16384;

/// An RSA private key, parsed and checked, with the certificate it belongs to when known.
///
/// Load it from the bytes of a file with [`PrivateKey::from_bytes`], which detects PKCS#8 PEM,
/// PKCS#1 PEM (`RSA PRIVATE KEY`), PKCS#8 DER and PKCS#1 DER. A PEM file may also hold the
/// certificate; then notifications' `encryptionCertificateThumbprint` is checked against it.
/// PKCS#12 (`.pfx`) files load with `PrivateKey::from_pkcs12` (feature `pkcs12`).
///
/// Key bytes are zeroized on drop; `Debug` shows the key size and certificate thumbprint only.
///
/// ```
/// # fn main() -> Result<(), graph_chat_notifications::KeyError> {
/// use graph_chat_notifications::crypto::PrivateKey;
/// let pem = std::fs::read("tests/fixtures/keys/rsa2048/key.pkcs8.pem").unwrap();
/// let key = PrivateKey::from_bytes(&pem)?;
/// assert_eq!(key.bits(), 2048);
/// assert!(!format!("{key:?}").contains("MII"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pkcs1: Zeroizing<Vec<u8>>,
    public: PublicNumbers,
    certificate: Option<Certificate>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.bits())
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// Modulus and public exponent, big-endian without leading zeros.
#[derive(Clone, PartialEq, Eq)]
struct PublicNumbers {
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl PublicNumbers {
    fn new(modulus: pkcs1::UintRef<'_>, exponent: pkcs1::UintRef<'_>) -> Self {
        Self {
            modulus: strip_zeros(modulus.as_bytes()),
            exponent: strip_zeros(exponent.as_bytes()),
        }
    }

    fn bits(&self) -> usize {
        match self.modulus.first() {
            None => 0,
            Some(&b) => self.modulus.len() * 8 - b.leading_zeros() as usize,
        }
    }
}

/// Uppercase hex, as Graph writes thumbprints.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

impl PrivateKey {
    /// Reads a key from file bytes, detecting the format: PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`,
    /// optionally with a `CERTIFICATE` block), PKCS#8 DER or PKCS#1 DER; with the `pkcs12`
    /// feature, also a PKCS#12 file without a password.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if let Some(text) = pem_text(bytes) {
            return Self::from_pem(text);
        }
        if let Ok(key) = Self::from_pkcs8_der(bytes) {
            return Ok(key);
        }
        match Self::from_pkcs1_der(bytes) {
            Ok(key) => return Ok(key),
            Err(e @ KeyError::UnsupportedKeySize { .. }) => return Err(e),
            Err(_) => {}
        }
        #[cfg(feature = "pkcs12")]
        if super::pkcs12::looks_like_pfx(bytes) {
            return Self::from_pkcs12(bytes, "");
        }
        Err(KeyError::UnrecognizedFormat)
    }

    /// Reads a PEM text holding one private key (`PRIVATE KEY` or `RSA PRIVATE KEY`) and
    /// optionally certificates; the certificate whose public key matches is kept.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let mut key: Option<Self> = None;
        let mut certs = Vec::new();
        for block in pem_blocks(text) {
            let (label, der) = block?;
            let parsed = match label.as_str() {
                "PRIVATE KEY" => Self::from_pkcs8_der(&der)?,
                "RSA PRIVATE KEY" => Self::from_pkcs1_der(&der)?,
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::EncryptedPem),
                "CERTIFICATE" => {
                    certs.push(Certificate::from_der(&der)?);
                    continue;
                }
                _ => continue,
            };
            if key.replace(parsed).is_some() {
                return Err(KeyError::SeveralPrivateKeys);
            }
        }
        let mut key = key.ok_or(KeyError::NoPrivateKey)?;
        key.adopt_matching_certificate(certs)?;
        Ok(key)
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` in DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|_| KeyError::Malformed {
            reason: "not a PKCS#8 PrivateKeyInfo",
        })?;
        if info.algorithm.oid != pkcs1::ALGORITHM_OID {
            return Err(KeyError::NotRsa);
        }
        let public = parse_pkcs1(info.private_key)?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            pkcs1: Zeroizing::new(info.private_key.to_vec()),
            public,
            certificate: None,
        })
    }

    /// Reads a PKCS#1 `RSAPrivateKey` in DER.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let public = parse_pkcs1(der)?;
        let pkcs8 = pkcs8::PrivateKeyInfo::new(pkcs1::ALGORITHM_ID, der)
            .to_der()
            .map_err(|_| KeyError::Malformed {
                reason: "cannot be re-encoded as PKCS#8",
            })?;
        Ok(Self {
            pkcs8: Zeroizing::new(pkcs8),
            pkcs1: Zeroizing::new(der.to_vec()),
            public,
            certificate: None,
        })
    }

    /// Attaches the certificate this key belongs to, after checking that its public key matches.
    /// With a certificate, notifications' `encryptionCertificateThumbprint` is checked.
    pub fn with_certificate(mut self, certificate: Certificate) -> Result<Self, KeyError> {
        if certificate.public != self.public {
            return Err(KeyError::CertificateMismatch);
        }
        self.certificate = Some(certificate);
        Ok(self)
    }

    /// Keeps the first certificate that matches the key; an error if there are certificates and
    /// none matches (a misconfiguration better caught at load time).
    pub(crate) fn adopt_matching_certificate(
        &mut self,
        certs: Vec<Certificate>,
    ) -> Result<(), KeyError> {
        if certs.is_empty() {
            return Ok(());
        }
        match certs.into_iter().find(|c| c.public == self.public) {
            Some(c) => {
                self.certificate = Some(c);
                Ok(())
            }
            None => Err(KeyError::CertificateMismatch),
        }
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.public.bits()
    }

    /// Size of the modulus in bytes: the length every `dataKey` for this key decodes to.
    pub fn modulus_len(&self) -> usize {
        self.public.modulus.len()
    }

    /// The certificate, when one was loaded with the key.
    pub fn certificate(&self) -> Option<&Certificate> {
        self.certificate.as_ref()
    }

    /// The key as PKCS#8 `PrivateKeyInfo` DER: secret material, for a crypto provider's loader
    /// only (the name makes every use stand out in review).
    pub fn expose_secret_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Modulus and public exponent, big-endian.
    #[cfg(feature = "testing")]
    pub(crate) fn public_numbers(&self) -> (&[u8], &[u8]) {
        (&self.public.modulus, &self.public.exponent)
    }

    /// The key as PKCS#1 `RSAPrivateKey` DER: secret material, for a crypto provider's loader
    /// only (the name makes every use stand out in review).
    pub fn expose_secret_pkcs1_der(&self) -> &[u8] {
        &self.pkcs1
    }
}

fn parse_pkcs1(der: &[u8]) -> Result<PublicNumbers, KeyError> {
    let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|_| KeyError::Malformed {
        reason: "not a PKCS#1 RSAPrivateKey",
    })?;
    let public = PublicNumbers::new(key.modulus, key.public_exponent);
    let bits = public.bits();
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(KeyError::UnsupportedKeySize { bits });
    }
    Ok(public)
}

/// An X.509 certificate: the one whose id a subscription names in `encryptionCertificateId`.
///
/// ```
/// use graph_chat_notifications::crypto::Certificate;
/// let pem = std::fs::read("tests/fixtures/vectors/dotnet-core-chatmessage/certificate.pem").unwrap();
/// let cert = Certificate::from_bytes(&pem).unwrap();
/// assert_eq!(cert.thumbprint_hex(), "4B95353E086AD37196606ACF834A14532F03E6DB");
/// ```
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    thumbprint: [u8; 20],
    public: PublicNumbers,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("thumbprint", &self.thumbprint_hex())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads a certificate from PEM (`CERTIFICATE`) or DER bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let Some(text) = pem_text(bytes) else {
            return Self::from_der(bytes);
        };
        for block in pem_blocks(text) {
            let (label, der) = block?;
            if label == "CERTIFICATE" {
                return Self::from_der(&der);
            }
        }
        Err(KeyError::BadCertificate {
            reason: "no CERTIFICATE block in the PEM",
        })
    }

    /// Reads a DER-encoded X.509 certificate with an RSA public key.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|_| KeyError::BadCertificate {
            reason: "not a DER X.509 certificate",
        })?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != pkcs1::ALGORITHM_OID {
            return Err(KeyError::NotRsa);
        }
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::BadCertificate {
                reason: "public key is not a whole number of bytes",
            })?;
        let key = pkcs1::RsaPublicKey::from_der(bits).map_err(|_| KeyError::BadCertificate {
            reason: "malformed RSA public key",
        })?;
        Ok(Self {
            thumbprint: Sha1::digest(der).into(),
            public: PublicNumbers::new(key.modulus, key.public_exponent),
            der: der.to_vec(),
        })
    }

    /// Modulus and public exponent, big-endian.
    #[cfg(feature = "testing")]
    pub(crate) fn public_numbers(&self) -> (&[u8], &[u8]) {
        (&self.public.modulus, &self.public.exponent)
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-1 of the DER: what Graph sends as `encryptionCertificateThumbprint`.
    pub fn thumbprint(&self) -> [u8; 20] {
        self.thumbprint
    }

    /// The thumbprint as uppercase hex, as Graph writes it.
    pub fn thumbprint_hex(&self) -> String {
        hex_upper(&self.thumbprint)
    }

    /// The DER in standard base64: the value of `encryptionCertificate` when subscribing.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }
}

/// The text of `bytes` if it holds PEM.
fn pem_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.contains("-----BEGIN ").then_some(text)
}

/// Every `-----BEGIN X-----` ... `-----END X-----` block of `text`, decoded. Text between blocks
/// (such as the `Bag Attributes` lines OpenSSL writes) is ignored.
fn pem_blocks(
    text: &str,
) -> impl Iterator<Item = Result<(String, Zeroizing<Vec<u8>>), KeyError>> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            rest = "";
            return Some(Err(KeyError::UnrecognizedFormat));
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            rest = "";
            return Some(Err(KeyError::UnrecognizedFormat));
        };
        let block_end = start + end + end_marker.len();
        let block = &rest[start..block_end];
        rest = &rest[block_end..];
        Some(
            der::pem::decode_vec(block.as_bytes())
                .map(|(label, der)| (label.to_owned(), Zeroizing::new(der)))
                .map_err(|_| KeyError::Malformed {
                    reason: "PEM block is not valid base64 (or has encryption headers)",
                }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_skip_text_between() {
        let text = "Bag Attributes\n    localKeyID: 01\n-----BEGIN FOO-----\nAQID\n-----END FOO-----\nx\n-----BEGIN BAR-----\nBA==\n-----END BAR-----\n";
        let blocks: Vec<_> = pem_blocks(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].0, "FOO");
        assert_eq!(blocks[0].1.as_slice(), &[1, 2, 3]);
        assert_eq!(blocks[1].1.as_slice(), &[4]);
    }

    #[test]
    fn garbage_is_unrecognized() {
        assert_eq!(
            PrivateKey::from_bytes(b"hello").unwrap_err(),
            KeyError::UnrecognizedFormat
        );
        assert_eq!(
            PrivateKey::from_bytes(b"").unwrap_err(),
            KeyError::UnrecognizedFormat
        );
        assert!(PrivateKey::from_bytes(
            b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert_eq!(
            PrivateKey::from_pem("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")
                .unwrap_err(),
            KeyError::BadCertificate {
                reason: "not a DER X.509 certificate"
            }
        );
    }

    #[test]
    fn bits_count_from_the_top_byte() {
        let p = PublicNumbers {
            modulus: vec![0x01, 0xff],
            exponent: vec![1],
        };
        assert_eq!(p.bits(), 9);
        assert_eq!(strip_zeros(&[0, 0, 5]), vec![5]);
    }
}
