//! PKCS#12 (`.pfx`) files as Windows, .NET, Azure Key Vault and OpenSSL export them.
//!
//! Supported: password integrity (HMAC with SHA-1 or SHA-2, keys from the PKCS#12 KDF); bags in
//! plain or password-encrypted `SafeContents`; the legacy PKCS#12 PBE schemes (SHA-1 with
//! 3-key or 2-key 3DES, RC2-40 or RC2-128) and PBES2 (PBKDF2 with AES-CBC). Not supported:
//! public-key integrity and privacy modes, and BER indefinite lengths.

use der::asn1::{ContextSpecific, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode};
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, FixedOutputReset};
use hmac::{Mac, SimpleHmac};
use pkcs12::kdf::{derive_key, Pkcs12KeyType};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs8::spki::AlgorithmIdentifierOwned;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::KeyError;
use super::{Certificate, PrivateKey};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// More iterations than this make a load-time denial of service, not a stronger file.
const MAX_ITERATIONS: i32 = 10_000_000;

fn bad(reason: &'static str) -> KeyError {
    KeyError::Pkcs12 { reason }
}

pub(crate) fn looks_like_pfx(bytes: &[u8]) -> bool {
    pkcs12::pfx::Pfx::from_der(bytes).is_ok()
}

impl PrivateKey {
    /// Reads the private key (and its certificate) from a PKCS#12 file protected by `password`:
    /// the legacy form Windows and .NET export (3DES key bag, RC2-40 certificates, SHA-1 MAC) and
    /// the modern form (PBES2 with AES-256, SHA-256 MAC) alike. The file must hold exactly one
    /// private key.
    ///
    /// ```
    /// # fn main() -> Result<(), graph_chat_notifications::KeyError> {
    /// use graph_chat_notifications::crypto::PrivateKey;
    /// let pfx = std::fs::read("tests/fixtures/vectors/dotnet-core-chatmessage/cert.pfx").unwrap();
    /// let key = PrivateKey::from_pkcs12(&pfx, "rich")?;
    /// assert_eq!(key.bits(), 4096);
    /// assert_eq!(
    ///     key.certificate().unwrap().thumbprint_hex(),
    ///     "4B95353E086AD37196606ACF834A14532F03E6DB"
    /// );
    /// # Ok(()) }
    /// ```
    pub fn from_pkcs12(bytes: &[u8], password: &str) -> Result<Self, KeyError> {
        let pfx = pkcs12::pfx::Pfx::from_der(bytes).map_err(|_| bad("not a DER PKCS#12 file"))?;
        if pfx.auth_safe.content_type != ID_DATA {
            return Err(bad("only password integrity is supported"));
        }
        let auth_safe = pfx
            .auth_safe
            .content
            .decode_as::<OctetStringRef<'_>>()
            .map_err(|_| bad("malformed authenticated safe"))?;
        let data = auth_safe.as_bytes();

        // The empty password has two encodings in the wild: the BMP terminator alone, and no
        // bytes at all. The MAC tells which one the file was made with.
        let candidates = password_encodings(password);
        let pass = match &pfx.mac_data {
            None => candidates.into_iter().next().ok_or(bad("password"))?,
            Some(mac) => candidates
                .into_iter()
                .find(|p| verify_mac(mac, data, p).unwrap_or(false))
                .ok_or(KeyError::Pkcs12Password)?,
        };

        let mut keys = Vec::new();
        let mut certs = Vec::new();
        let infos = Vec::<cms::content_info::ContentInfo>::from_der(data)
            .map_err(|_| bad("malformed authenticated safe"))?;
        for info in infos {
            // Plain contents are read where they lie (in the file's bytes), decrypted ones from a
            // buffer that is wiped: no other copy of a bag is made.
            let decrypted: Zeroizing<Vec<u8>>;
            let contents: &[u8] = if info.content_type == ID_DATA {
                info.content
                    .decode_as::<OctetStringRef<'_>>()
                    .map_err(|_| bad("malformed data content"))?
                    .as_bytes()
            } else if info.content_type == ID_ENCRYPTED_DATA {
                let ed = cms::encrypted_data::EncryptedData::from_der(&der_of(&info.content)?)
                    .map_err(|_| bad("malformed encrypted data"))?;
                let ciphertext = ed
                    .enc_content_info
                    .encrypted_content
                    .ok_or(bad("encrypted data without content"))?;
                decrypted = decrypt(
                    &ed.enc_content_info.content_enc_alg,
                    ciphertext.as_bytes(),
                    password,
                    &pass,
                )?;
                &decrypted
            } else {
                return Err(bad("only password privacy is supported"));
            };
            read_bags(contents, password, &pass, &mut keys, &mut certs)?;
        }
        let pkcs8 = match keys.len() {
            0 => return Err(KeyError::NoPrivateKey),
            1 => keys.remove(0),
            _ => return Err(KeyError::SeveralPrivateKeys),
        };
        let mut key = PrivateKey::from_pkcs8_der(&pkcs8)?;
        key.adopt_matching_certificate(certs)?;
        Ok(key)
    }
}

fn der_of(any: &der::Any) -> Result<Vec<u8>, KeyError> {
    any.to_der().map_err(|_| bad("malformed content"))
}

fn read_bags(
    contents: &[u8],
    password: &str,
    pass: &[u8],
    keys: &mut Vec<Zeroizing<Vec<u8>>>,
    certs: &mut Vec<Certificate>,
) -> Result<(), KeyError> {
    // Each bag's value moves into a buffer that is wiped, before any is read: a plain key bag
    // holds the private key in clear, and an error on one bag drops the others.
    let bags: Vec<(ObjectIdentifier, Zeroizing<Vec<u8>>)> =
        Vec::<pkcs12::safe_bag::SafeBag>::from_der(contents)
            .map_err(|_| bad("malformed safe contents"))?
            .into_iter()
            .map(|bag| (bag.bag_id, Zeroizing::new(bag.bag_value)))
            .collect();
    for (bag_id, bag_value) in &bags {
        match *bag_id {
            pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                let shrouded = ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(bag_value)
                    .map_err(|_| bad("malformed shrouded key bag"))?
                    .value;
                keys.push(decrypt(
                    &shrouded.encryption_algorithm,
                    shrouded.encrypted_data.as_bytes(),
                    password,
                    pass,
                )?);
            }
            pkcs12::PKCS_12_KEY_BAG_OID => {
                // Borrowed from the wiped bag value; the one copy is wiped too.
                let key = ContextSpecific::<der::AnyRef<'_>>::from_der(bag_value)
                    .map_err(|_| bad("malformed key bag"))?
                    .value;
                let mut der = Zeroizing::new(Vec::new());
                key.encode_to_vec(&mut der)
                    .map_err(|_| bad("malformed key bag"))?;
                keys.push(der);
            }
            pkcs12::PKCS_12_CERT_BAG_OID => {
                let cert = ContextSpecific::<pkcs12::cert_type::CertBag>::from_der(bag_value)
                    .map_err(|_| bad("malformed certificate bag"))?
                    .value;
                if cert.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                    certs.push(Certificate::from_der(cert.cert_value.as_bytes())?);
                }
            }
            pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID => {
                return Err(bad("nested safe contents are not supported"))
            }
            _ => {} // CRLs and secrets are not ours to read.
        }
    }
    Ok(())
}

/// The password as the PKCS#12 KDF takes it: UTF-16BE with a two-byte terminator; for the empty
/// password, also no bytes at all.
fn password_encodings(password: &str) -> Vec<Zeroizing<Vec<u8>>> {
    let mut bmp = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        bmp.extend_from_slice(&unit.to_be_bytes());
    }
    bmp.extend_from_slice(&[0, 0]);
    let mut out = vec![bmp];
    if password.is_empty() {
        out.push(Zeroizing::new(Vec::new()));
    }
    out
}

fn iterations(n: i32) -> Result<i32, KeyError> {
    if (1..=MAX_ITERATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(bad("iteration count out of range"))
    }
}

fn verify_mac(mac: &pkcs12::mac_data::MacData, data: &[u8], pass: &[u8]) -> Result<bool, KeyError> {
    fn check<D>(mac: &pkcs12::mac_data::MacData, data: &[u8], pass: &[u8]) -> Result<bool, KeyError>
    where
        D: Digest + FixedOutputReset + BlockSizeUser + Clone,
    {
        let rounds = iterations(mac.iterations)?;
        let key = Zeroizing::new(derive_key::<D>(
            pass,
            mac.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            rounds,
            <D as Digest>::output_size(),
        ));
        let mut hmac = <SimpleHmac<D> as Mac>::new_from_slice(&key).map_err(|_| bad("MAC key"))?;
        hmac.update(data);
        let tag = hmac.finalize().into_bytes();
        Ok(bool::from(tag.as_slice().ct_eq(mac.mac.digest.as_bytes())))
    }
    match mac.mac.algorithm.oid {
        SHA1 => check::<sha1::Sha1>(mac, data, pass),
        SHA256 => check::<sha2::Sha256>(mac, data, pass),
        SHA384 => check::<sha2::Sha384>(mac, data, pass),
        SHA512 => check::<sha2::Sha512>(mac, data, pass),
        _ => Err(bad("unsupported MAC algorithm")),
    }
}

/// Decrypts a bag or safe contents with a PKCS#12 PBE scheme or PBES2.
fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &str,
    pass: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, InnerIvInit, KeyIvInit};

    if alg.oid == PBES2 {
        let der = alg
            .to_der()
            .map_err(|_| bad("malformed PBES2 parameters"))?;
        let scheme = pkcs5::EncryptionScheme::from_der(&der)
            .map_err(|_| bad("unsupported PBES2 parameters"))?;
        if let Some(pbkdf2) = scheme.pbes2().and_then(|p| p.kdf.pbkdf2()) {
            iterations(i32::try_from(pbkdf2.iteration_count).unwrap_or(i32::MAX))?;
        }
        // In place, in a buffer that is wiped even when decryption fails (pkcs5's `decrypt`
        // would leave a failed attempt's plaintext in a buffer of its own).
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = scheme
            .decrypt_in_place(password.as_bytes(), &mut buf)
            .map_err(|_| KeyError::Pkcs12Password)?
            .len();
        buf.truncate(len);
        return Ok(buf);
    }

    let (key_len, cipher) = match alg.oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => (24, Legacy::Tdes3),
        pkcs12::PKCS_12_PBE_WITH_SHAAND2_KEY_TRIPLE_DES_CBC => (16, Legacy::Tdes2),
        pkcs12::PKCS_12_PBE_WITH_SHAAND128_BIT_RC2_CBC => (16, Legacy::Rc2(128)),
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => (5, Legacy::Rc2(40)),
        _ => return Err(bad("unsupported encryption algorithm")),
    };
    let params = alg
        .parameters
        .as_ref()
        .ok_or(bad("PBE without parameters"))?
        .to_der()
        .map_err(|_| bad("malformed PBE parameters"))?;
    let params = Pkcs12PbeParams::from_der(&params).map_err(|_| bad("malformed PBE parameters"))?;
    let rounds = iterations(params.iterations)?;
    let salt = params.salt.as_bytes();
    let key = Zeroizing::new(derive_key::<sha1::Sha1>(
        pass,
        salt,
        Pkcs12KeyType::EncryptionKey,
        rounds,
        key_len,
    ));
    // Derived from the password like the key: wiped like it.
    let iv = Zeroizing::new(derive_key::<sha1::Sha1>(
        pass,
        salt,
        Pkcs12KeyType::Iv,
        rounds,
        8,
    ));
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = match cipher {
        Legacy::Tdes3 => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| bad("key length"))?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.len()),
        Legacy::Tdes2 => cbc::Decryptor::<des::TdesEde2>::new_from_slices(&key, &iv)
            .map_err(|_| bad("key length"))?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.len()),
        Legacy::Rc2(bits) => {
            // RC2 takes its effective key length explicitly, so it is built by hand.
            let rc2 = rc2::Rc2::new_with_eff_key_len(&key, bits);
            cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
                .map_err(|_| bad("iv length"))?
                .decrypt_padded_mut::<Pkcs7>(&mut buf)
                .map(|p| p.len())
        }
    }
    .map_err(|_| KeyError::Pkcs12Password)?;
    buf.truncate(len);
    Ok(buf)
}

enum Legacy {
    Tdes3,
    Tdes2,
    Rc2(usize),
}

// The legacy ciphers' key schedules and the CBC state are wiped when dropped: `des`, `rc2` and
// `cbc` are built with their `zeroize` features. Checked when the crate compiles (the types
// implement `ZeroizeOnDrop` only with those features on).
const _: fn() = || {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wipes_on_drop::<des::TdesEde3>();
    wipes_on_drop::<des::TdesEde2>();
    wipes_on_drop::<rc2::Rc2>();
    wipes_on_drop::<cbc::Decryptor<des::TdesEde3>>();
    wipes_on_drop::<cbc::Decryptor<rc2::Rc2>>();
};
