//! The buttons the bot puts under its messages, as a typed enum. Each is encoded into
//! `callback_data` and tagged by `shared::callback::CallbackSigner`.

use rust_decimal::Decimal;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    Balance,
    TopUp,
    Shop,
    History,
    Help,
    /// A preset amount under "Top up".
    TopUpAmount(Decimal),
    /// "Other amount": the next message is the amount.
    TopUpOther,
    Buy(i64),
}

impl Callback {
    /// Short on purpose: Telegram allows 64 bytes including our tag.
    pub fn encode(self) -> String {
        match self {
            Callback::Balance => "m:bal".into(),
            Callback::TopUp => "m:top".into(),
            Callback::Shop => "m:shop".into(),
            Callback::History => "m:hist".into(),
            Callback::Help => "m:help".into(),
            Callback::TopUpAmount(amount) => format!("t:{amount}"),
            Callback::TopUpOther => "t:other".into(),
            Callback::Buy(product) => format!("b:{product}"),
        }
    }

    pub fn decode(payload: &str) -> Option<Callback> {
        Some(match payload {
            "m:bal" => Callback::Balance,
            "m:top" => Callback::TopUp,
            "m:shop" => Callback::Shop,
            "m:hist" => Callback::History,
            "m:help" => Callback::Help,
            "t:other" => Callback::TopUpOther,
            _ => {
                let (kind, value) = payload.split_once(':')?;
                match kind {
                    "t" => Callback::TopUpAmount(Decimal::from_str(value).ok()?),
                    "b" => Callback::Buy(value.parse().ok()?),
                    _ => return None,
                }
            }
        })
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
        let all = [
            Callback::Balance,
            Callback::TopUp,
            Callback::Shop,
            Callback::History,
            Callback::Help,
            Callback::TopUpAmount(Decimal::new(99_999_999, 2)),
            Callback::TopUpOther,
            Callback::Buy(i64::MAX),
        ];
        for c in all {
            let data = signer.sign(&c.encode());
            assert!(data.len() <= MAX_CALLBACK_DATA, "{c:?} too long");
            assert_eq!(Callback::decode(signer.verify(&data).unwrap()), Some(c));
        }
        assert_eq!(Callback::decode("b:x"), None);
        assert_eq!(Callback::decode("z:1"), None);
    }
}
