//! Inline-button `callback_data` is chosen by us but returned by the client, so it is
//! untrusted. Each payload gets a short HMAC tag: data that was tampered with, forged, or
//! issued under another key (stale) fails verification and is answered without effect.

use crate::secret::SecretString;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Telegram's limit on `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA: usize = 64;
/// 8 bytes of HMAC-SHA256: 64 bits is far beyond what a client can guess inside a button.
const TAG_BYTES: usize = 8;
const TAG_CHARS: usize = 11;
const SEPARATOR: char = '~';
/// Longest payload that still fits with its tag.
pub const MAX_PAYLOAD: usize = MAX_CALLBACK_DATA - TAG_CHARS - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("callback data has no tag")]
    Untagged,
    #[error("callback data tag does not verify")]
    BadTag,
}

#[derive(Clone)]
pub struct CallbackSigner {
    /// HMAC-SHA256 already keyed: cloning it skips hashing the inner and outer key blocks on
    /// every call, half the work of tagging a short payload.
    keyed: HmacSha256,
}

impl std::fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSigner([REDACTED])")
    }
}

impl CallbackSigner {
    /// Derives the key from the bot token, so every worker of one bot agrees without another
    /// setting, and a new token invalidates old buttons.
    pub fn from_bot_token(token: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(token.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(b"paystream/callback-data/v1");
        let key = mac.finalize().into_bytes();
        Self {
            keyed: HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length"),
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload.as_bytes());
        mac
    }

    /// `payload~TAG`. Panics if the payload is too long or contains the separator: payloads
    /// are built by our own code, so that is a programming error caught by tests.
    pub fn sign(&self, payload: &str) -> String {
        assert!(
            payload.len() <= MAX_PAYLOAD && !payload.contains(SEPARATOR),
            "callback payload {payload:?} does not fit"
        );
        let tag = self.mac(payload).finalize().into_bytes();
        let mut data = String::with_capacity(payload.len() + 1 + TAG_CHARS);
        data.push_str(payload);
        data.push(SEPARATOR);
        URL_SAFE_NO_PAD.encode_string(&tag[..TAG_BYTES], &mut data);
        data
    }

    /// The payload, if `data` carries a valid tag. The comparison is constant-time.
    pub fn verify<'a>(&self, data: &'a str) -> Result<&'a str, CallbackError> {
        let (payload, tag) = data.rsplit_once(SEPARATOR).ok_or(CallbackError::Untagged)?;
        // Room for what 11 characters can decode to; a longer tag fails to decode.
        let mut decoded = [0u8; 12];
        let len = URL_SAFE_NO_PAD
            .decode_slice(tag, &mut decoded)
            .map_err(|_| CallbackError::BadTag)?;
        if len != TAG_BYTES {
            return Err(CallbackError::BadTag);
        }
        self.mac(payload)
            .verify_truncated_left(&decoded[..TAG_BYTES])
            .map_err(|_| CallbackError::BadTag)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(token: &str) -> CallbackSigner {
        CallbackSigner::from_bot_token(&SecretString::new(token))
    }

    #[test]
    fn round_trip_and_fits_telegram_limit() {
        let s = signer("123:abc");
        let longest = "x".repeat(MAX_PAYLOAD);
        let data = s.sign(&longest);
        assert!(data.len() <= MAX_CALLBACK_DATA);
        assert_eq!(s.verify(&data), Ok(longest.as_str()));
    }

    #[test]
    fn tags_are_stable_across_releases() {
        // HMAC-SHA256(HMAC-SHA256(token, "paystream/callback-data/v1"), payload), first 8 bytes,
        // base64url: buttons already sent must keep verifying after an upgrade.
        let s = signer("123:abc");
        assert_eq!(s.sign("topup:10"), "topup:10~X7tBf0IzA-E");
        assert_eq!(s.verify("topup:10~X7tBf0IzA-E"), Ok("topup:10"));
    }

    #[test]
    fn tampered_forged_and_stale_data_is_refused() {
        let s = signer("123:abc");
        let data = s.sign("topup:10");
        let tampered = data.replacen("topup:10", "topup:99", 1);
        assert_eq!(s.verify(&tampered), Err(CallbackError::BadTag));
        assert_eq!(s.verify("topup:10"), Err(CallbackError::Untagged));
        assert_eq!(s.verify("topup:10~AAAA"), Err(CallbackError::BadTag));
        let (_, tag) = data.rsplit_once(SEPARATOR).unwrap();
        for odd in [
            format!("topup:10~{tag}A"),
            format!("topup:10~{tag}{tag}"),
            format!("topup:10~{}", &tag[..10]),
            "topup:10~".to_owned(),
            "topup:10~!!!!!!!!!!!".to_owned(),
        ] {
            assert_eq!(s.verify(&odd), Err(CallbackError::BadTag), "{odd}");
        }
        let stale = signer("123:old-token").sign("topup:10");
        assert_eq!(s.verify(&stale), Err(CallbackError::BadTag));
    }
}
