//! SNMPv3 User-based Security Model crypto for the receiving side (pure, no I/O): keys from
//! passphrases localized to an engine (RFC 3414 A.2), message digests (HMAC-MD5-96,
//! HMAC-SHA-96, RFC 7860's HMAC-SHA-2 family) and privacy (DES-CBC, RFC 3414 8; AES-CFB128,
//! RFC 3826, with net-snmp's key extension for AES-192/256).
//!
//! The polling side does not use this module: `snmp2` does its USM. This one exists because a
//! notification receiver needs what `snmp2` keeps private: keys for an engine other than the
//! one polled, and signing/encrypting responses under our own engine id.
//!
//! Invariants: nothing here panics on input from the network (wrong lengths are errors);
//! passphrases are at least 8 characters (checked by the config), a shorter one still works.

use aes::cipher::{AsyncStreamCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use coldaisle_config::snmp::{AuthProtocol, PrivProtocol, SecurityLevel, UsmUser};
use hmac::{Mac, SimpleHmac};
use sha2::Digest;

/// Why a USM operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsmError {
    /// Ciphertext or salt of a wrong size.
    #[error("privacy parameters or ciphertext of a wrong size ({0})")]
    BadLength(&'static str),
    /// A key too short for its cipher.
    #[error("privacy key too short for {0}")]
    ShortKey(&'static str),
}

/// Length of the (truncated) digest a message carries for `protocol`.
#[must_use]
pub fn digest_len(protocol: AuthProtocol) -> usize {
    match protocol {
        AuthProtocol::Md5 | AuthProtocol::Sha1 => 12,
        AuthProtocol::Sha224 => 16,
        AuthProtocol::Sha256 => 24,
        AuthProtocol::Sha384 => 32,
        AuthProtocol::Sha512 => 48,
    }
}

fn hash_with<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().to_vec()
}

fn hash(protocol: AuthProtocol, parts: &[&[u8]]) -> Vec<u8> {
    match protocol {
        AuthProtocol::Md5 => hash_with::<md5::Md5>(parts),
        AuthProtocol::Sha1 => hash_with::<sha1::Sha1>(parts),
        AuthProtocol::Sha224 => hash_with::<sha2::Sha224>(parts),
        AuthProtocol::Sha256 => hash_with::<sha2::Sha256>(parts),
        AuthProtocol::Sha384 => hash_with::<sha2::Sha384>(parts),
        AuthProtocol::Sha512 => hash_with::<sha2::Sha512>(parts),
    }
}

fn password_to_key_with<D: Digest>(password: &[u8]) -> Vec<u8> {
    let mut d = D::new();
    if password.is_empty() {
        return d.finalize().to_vec();
    }
    // RFC 3414 A.2: hash the first 1 MiB of the endlessly repeated passphrase.
    let mut chunk = [0u8; 64];
    let mut at = 0;
    for _ in 0..(1_048_576 / 64) {
        for byte in &mut chunk {
            *byte = password[at];
            at = (at + 1) % password.len();
        }
        d.update(chunk);
    }
    d.finalize().to_vec()
}

/// The user's master key Ku for a passphrase (RFC 3414 A.2.1/A.2.2, RFC 7860 for SHA-2).
#[must_use]
pub fn password_to_key(protocol: AuthProtocol, password: &[u8]) -> Vec<u8> {
    match protocol {
        AuthProtocol::Md5 => password_to_key_with::<md5::Md5>(password),
        AuthProtocol::Sha1 => password_to_key_with::<sha1::Sha1>(password),
        AuthProtocol::Sha224 => password_to_key_with::<sha2::Sha224>(password),
        AuthProtocol::Sha256 => password_to_key_with::<sha2::Sha256>(password),
        AuthProtocol::Sha384 => password_to_key_with::<sha2::Sha384>(password),
        AuthProtocol::Sha512 => password_to_key_with::<sha2::Sha512>(password),
    }
}

/// Kul = H(Ku || engineID || Ku): the master key localized to one engine (RFC 3414 2.6).
#[must_use]
pub fn localize(protocol: AuthProtocol, master: &[u8], engine_id: &[u8]) -> Vec<u8> {
    hash(protocol, &[master, engine_id, master])
}

fn priv_key_len(protocol: PrivProtocol) -> usize {
    match protocol {
        PrivProtocol::Des | PrivProtocol::Aes128 => 16,
        PrivProtocol::Aes192 => 24,
        PrivProtocol::Aes256 => 32,
    }
}

/// The keys of one user localized to one engine.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalizedKeys {
    /// HMAC key (empty for noAuthNoPriv).
    pub auth: Vec<u8>,
    /// Privacy key, extended to the cipher's length (empty without privacy).
    pub privacy: Vec<u8>,
}

impl std::fmt::Debug for LocalizedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalizedKeys(<redacted>)")
    }
}

/// A user's master keys Ku (the expensive part: 1 MiB hashed per passphrase), computed once
/// per user and then localized cheaply to every engine the user talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKeys {
    auth: Vec<u8>,
    privacy: Vec<u8>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeys(<redacted>)")
    }
}

/// Computes `user`'s master keys (empty where its level has no such passphrase).
#[must_use]
pub fn master_keys(user: &UsmUser) -> MasterKeys {
    let of = |secret: &Option<coldaisle_config::Secret>| {
        secret.as_ref().map_or_else(Vec::new, |s| {
            password_to_key(user.auth_protocol, s.expose().as_bytes())
        })
    };
    MasterKeys {
        auth: match user.level {
            SecurityLevel::NoAuthNoPriv => Vec::new(),
            _ => of(&user.auth_passphrase),
        },
        privacy: match user.level {
            SecurityLevel::AuthPriv => of(&user.priv_passphrase),
            _ => Vec::new(),
        },
    }
}

/// Localizes `user`'s master keys to `engine_id`. A privacy key shorter than its cipher needs
/// (AES-192/256 with MD5 or SHA-1) is extended as net-snmp does it for `-x AES-192|AES-256`
/// (Blumenthal draft: Kul || H(Kul), then the hash of all so far, until long enough).
#[must_use]
pub fn localized_keys(user: &UsmUser, master: &MasterKeys, engine_id: &[u8]) -> LocalizedKeys {
    let protocol = user.auth_protocol;
    let local = |ku: &[u8]| {
        if ku.is_empty() {
            Vec::new()
        } else {
            localize(protocol, ku, engine_id)
        }
    };
    let auth = local(&master.auth);
    let mut privacy = local(&master.privacy);
    if !privacy.is_empty() {
        let needed = priv_key_len(user.priv_protocol);
        while privacy.len() < needed {
            let more = hash(protocol, &[&privacy]);
            privacy.extend_from_slice(&more);
        }
        privacy.truncate(needed);
    }
    LocalizedKeys { auth, privacy }
}

fn hmac_with<D: Digest + hmac::digest::core_api::BlockSizeUser>(
    key: &[u8],
    data: &[u8],
) -> Vec<u8> {
    // SimpleHmac accepts keys of any length (an HMAC key is hashed when longer than a block).
    let Ok(mut mac) = SimpleHmac::<D>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The truncated digest of a whole message (authentication parameters zeroed) under `key`.
#[must_use]
pub fn digest(protocol: AuthProtocol, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut full = match protocol {
        AuthProtocol::Md5 => hmac_with::<md5::Md5>(key, message),
        AuthProtocol::Sha1 => hmac_with::<sha1::Sha1>(key, message),
        AuthProtocol::Sha224 => hmac_with::<sha2::Sha224>(key, message),
        AuthProtocol::Sha256 => hmac_with::<sha2::Sha256>(key, message),
        AuthProtocol::Sha384 => hmac_with::<sha2::Sha384>(key, message),
        AuthProtocol::Sha512 => hmac_with::<sha2::Sha512>(key, message),
    };
    full.truncate(digest_len(protocol));
    full
}

/// Constant-time comparison of two digests.
#[must_use]
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn aes_iv(boots: u32, time: u32, salt: &[u8]) -> Result<[u8; 16], UsmError> {
    if salt.len() != 8 {
        return Err(UsmError::BadLength("AES salt is not 8 octets"));
    }
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(salt);
    Ok(iv)
}

fn des_key_iv(key: &[u8], salt: &[u8]) -> Result<([u8; 8], [u8; 8]), UsmError> {
    if salt.len() != 8 {
        return Err(UsmError::BadLength("DES salt is not 8 octets"));
    }
    if key.len() < 16 {
        return Err(UsmError::ShortKey("DES"));
    }
    let mut des_key = [0u8; 8];
    des_key.copy_from_slice(&key[..8]);
    let mut iv = [0u8; 8];
    for (i, b) in iv.iter_mut().enumerate() {
        *b = key[8 + i] ^ salt[i];
    }
    Ok((des_key, iv))
}

fn aes_key(protocol: PrivProtocol, key: &[u8]) -> Result<&[u8], UsmError> {
    let n = priv_key_len(protocol);
    key.get(..n).ok_or(UsmError::ShortKey(protocol.name()))
}

/// Decrypts an encrypted scoped PDU. `boots`/`time` are the authoritative engine's values
/// the message carries, `salt` its privacy parameters.
pub fn decrypt(
    protocol: PrivProtocol,
    key: &[u8],
    boots: u32,
    time: u32,
    salt: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, UsmError> {
    let mut buf = data.to_vec();
    match protocol {
        PrivProtocol::Des => {
            if buf.len() % 8 != 0 {
                return Err(UsmError::BadLength("DES ciphertext is not a multiple of 8"));
            }
            let (k, iv) = des_key_iv(key, salt)?;
            let mut dec = cbc::Decryptor::<des::Des>::new(&k.into(), &iv.into());
            for block in buf.chunks_exact_mut(8) {
                dec.decrypt_block_mut(block.into());
            }
        }
        PrivProtocol::Aes128 | PrivProtocol::Aes192 | PrivProtocol::Aes256 => {
            let iv = aes_iv(boots, time, salt)?;
            let k = aes_key(protocol, key)?;
            let bad = |_| UsmError::ShortKey(protocol.name());
            match protocol {
                PrivProtocol::Aes128 => cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .decrypt(&mut buf),
                PrivProtocol::Aes192 => cfb_mode::Decryptor::<aes::Aes192>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .decrypt(&mut buf),
                _ => cfb_mode::Decryptor::<aes::Aes256>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .decrypt(&mut buf),
            }
        }
    }
    Ok(buf)
}

/// Encrypts a scoped PDU; returns the ciphertext and the privacy parameters (salt) to send.
/// `salt` must differ for every message sent under one key (a counter will do).
pub fn encrypt(
    protocol: PrivProtocol,
    key: &[u8],
    boots: u32,
    time: u32,
    salt: u64,
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), UsmError> {
    let mut buf = data.to_vec();
    match protocol {
        PrivProtocol::Des => {
            // RFC 3414 8.1.1.1: salt = engine boots || local counter.
            let mut s = [0u8; 8];
            s[..4].copy_from_slice(&boots.to_be_bytes());
            s[4..].copy_from_slice(&(salt as u32).to_be_bytes());
            let (k, iv) = des_key_iv(key, &s)?;
            buf.resize(buf.len().div_ceil(8) * 8, 0);
            let mut enc = cbc::Encryptor::<des::Des>::new(&k.into(), &iv.into());
            for block in buf.chunks_exact_mut(8) {
                enc.encrypt_block_mut(block.into());
            }
            Ok((buf, s.to_vec()))
        }
        PrivProtocol::Aes128 | PrivProtocol::Aes192 | PrivProtocol::Aes256 => {
            let s = salt.to_be_bytes();
            let iv = aes_iv(boots, time, &s)?;
            let k = aes_key(protocol, key)?;
            let bad = |_| UsmError::ShortKey(protocol.name());
            match protocol {
                PrivProtocol::Aes128 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .encrypt(&mut buf),
                PrivProtocol::Aes192 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .encrypt(&mut buf),
                _ => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(k, &iv)
                    .map_err(bad)?
                    .encrypt(&mut buf),
            }
            Ok((buf, s.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 3414 A.3.1 / A.3.2: passphrase "maplesyrup", engine 000000000000000000000002.
    #[test]
    fn rfc3414_key_localization_vectors() {
        let engine = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let ku = password_to_key(AuthProtocol::Md5, b"maplesyrup");
        assert_eq!(hex(&ku), "9faf3283884e92834ebc9847d8edd963");
        assert_eq!(
            hex(&localize(AuthProtocol::Md5, &ku, &engine)),
            "526f5eed9fcce26f8964c2930787d82b"
        );
        let ku = password_to_key(AuthProtocol::Sha1, b"maplesyrup");
        assert_eq!(hex(&ku), "9fb5cc0381497b3793528939ff788d5d79145211");
        assert_eq!(
            hex(&localize(AuthProtocol::Sha1, &ku, &engine)),
            "6695febc9288e36282235fc7151f128497b38f3f"
        );
    }

    #[test]
    fn encryption_round_trips_for_every_cipher() {
        for protocol in [
            PrivProtocol::Des,
            PrivProtocol::Aes128,
            PrivProtocol::Aes192,
            PrivProtocol::Aes256,
        ] {
            let key: Vec<u8> = (0u8..32).collect();
            let data = b"a scoped PDU of 29 octets ....".to_vec();
            let (cipher, salt) = encrypt(protocol, &key, 3, 1000, 77, &data).unwrap();
            assert_ne!(cipher[..data.len()], data[..], "{protocol:?}");
            let plain = decrypt(protocol, &key, 3, 1000, &salt, &cipher).unwrap();
            assert_eq!(&plain[..data.len()], &data[..], "{protocol:?}");
        }
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let key = [1u8; 16];
        assert!(decrypt(PrivProtocol::Des, &key, 0, 0, &[0; 8], &[0; 7]).is_err());
        assert!(decrypt(PrivProtocol::Aes128, &key, 0, 0, &[0; 3], &[0; 7]).is_err());
        assert!(decrypt(PrivProtocol::Aes256, &key, 0, 0, &[0; 8], &[0; 7]).is_err());
        assert!(decrypt(PrivProtocol::Des, &key[..8], 0, 0, &[0; 8], &[0; 8]).is_err());
    }

    #[test]
    fn extended_priv_keys_have_the_cipher_length() {
        let user = UsmUser {
            user: "u".into(),
            level: SecurityLevel::AuthPriv,
            auth_protocol: AuthProtocol::Sha1,
            auth_passphrase: Some("authpass1".into()),
            priv_protocol: PrivProtocol::Aes256,
            priv_passphrase: Some("privpass1".into()),
            context: String::new(),
        };
        let keys = localized_keys(&user, &master_keys(&user), b"\x80\x00\x1f\x88\x04abc");
        assert_eq!(keys.auth.len(), 20);
        assert_eq!(keys.privacy.len(), 32);
        // Blumenthal: the extension is H(Kul).
        let kul = &keys.privacy[..20];
        assert_eq!(&keys.privacy[20..], &hash(AuthProtocol::Sha1, &[kul])[..12]);
        assert_eq!(format!("{keys:?}"), "LocalizedKeys(<redacted>)");
        assert_eq!(
            format!("{:?}", master_keys(&user)),
            "MasterKeys(<redacted>)"
        );
    }

    #[test]
    fn digest_is_truncated_and_compared_in_full() {
        for (p, n) in [
            (AuthProtocol::Md5, 12),
            (AuthProtocol::Sha1, 12),
            (AuthProtocol::Sha224, 16),
            (AuthProtocol::Sha256, 24),
            (AuthProtocol::Sha384, 32),
            (AuthProtocol::Sha512, 48),
        ] {
            let d = digest(p, b"key", b"message");
            assert_eq!(d.len(), n);
            assert!(digests_equal(&d, &digest(p, b"key", b"message")));
            assert!(!digests_equal(&d, &digest(p, b"kez", b"message")));
            assert!(!digests_equal(&d, &d[..n - 1]));
        }
    }
}
