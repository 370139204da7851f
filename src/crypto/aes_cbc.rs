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

// The expanded key schedule and the IV (half the symmetric key) are wiped when the decryptor is
// dropped: `aes` and `cbc` are built with their `zeroize` features. Checked when the crate
// compiles (the types implement `ZeroizeOnDrop` only with those features on).
const _: fn() = || {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wipes_on_drop::<aes::Aes256>();
    wipes_on_drop::<aes::Aes256Dec>();
    wipes_on_drop::<cbc::Decryptor<aes::Aes256>>();
};
