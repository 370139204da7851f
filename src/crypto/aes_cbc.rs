//! AES-256-CBC decryption in place, shared by the providers: the `aes` crate uses AES-NI where
//! the CPU has it, and allocates nothing.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};

use super::CryptoFailure;

pub(crate) fn aes256_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    buf: &mut [u8],
) -> Result<usize, CryptoFailure> {
    cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
        .decrypt_padded_mut::<Pkcs7>(buf)
        .map(|plain| plain.len())
        .map_err(|_| CryptoFailure)
}
