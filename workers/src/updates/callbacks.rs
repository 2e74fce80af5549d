//! The buttons the bot puts under its messages, as a typed enum. Each is encoded into
//! `callback_data` and tagged by `shared::callback::CallbackSigner`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    Balance,
    TopUp,
    Shop,
    History,
    Help,
}

impl Callback {
    pub const ALL: [Callback; 5] = [
        Callback::Balance,
        Callback::TopUp,
        Callback::Shop,
        Callback::History,
        Callback::Help,
    ];

    /// Short on purpose: Telegram allows 64 bytes including our tag.
    pub fn encode(self) -> &'static str {
        match self {
            Callback::Balance => "m:bal",
            Callback::TopUp => "m:top",
            Callback::Shop => "m:shop",
            Callback::History => "m:hist",
            Callback::Help => "m:help",
        }
    }

    pub fn decode(payload: &str) -> Option<Callback> {
        Callback::ALL.into_iter().find(|c| c.encode() == payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::callback::{CallbackSigner, MAX_CALLBACK_DATA};
    use shared::secret::SecretString;

    #[test]
    fn every_variant_round_trips_and_fits_telegram_limit() {
        let signer = CallbackSigner::from_bot_token(&SecretString::new("1:t"));
        for c in Callback::ALL {
            let data = signer.sign(c.encode());
            assert!(data.len() <= MAX_CALLBACK_DATA, "{c:?} too long");
            assert_eq!(Callback::decode(signer.verify(&data).unwrap()), Some(c));
        }
    }
}
