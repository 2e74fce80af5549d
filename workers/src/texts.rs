//! Every word the bot says, in English and Russian, in one place.

use crate::repo::users::LedgerLine;
use shared::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    /// Russian for `ru`, English otherwise (the contract).
    pub fn from_code(code: Option<&str>) -> Lang {
        match code {
            Some(c) if c == "ru" || c.starts_with("ru-") => Lang::Ru,
            _ => Lang::En,
        }
    }
}

pub struct MenuLabels {
    pub balance: &'static str,
    pub top_up: &'static str,
    pub shop: &'static str,
    pub history: &'static str,
    pub help: &'static str,
}

pub fn menu_labels(lang: Lang) -> MenuLabels {
    match lang {
        Lang::En => MenuLabels {
            balance: "💰 Balance",
            top_up: "➕ Top up",
            shop: "🛒 Shop",
            history: "📜 History",
            help: "❓ Help",
        },
        Lang::Ru => MenuLabels {
            balance: "💰 Баланс",
            top_up: "➕ Пополнить",
            shop: "🛒 Магазин",
            history: "📜 История",
            help: "❓ Помощь",
        },
    }
}

pub fn welcome(lang: Lang, first_name: &str) -> String {
    let name = if first_name.trim().is_empty() {
        match lang {
            Lang::En => "there",
            Lang::Ru => "друг",
        }
    } else {
        first_name
    };
    match lang {
        Lang::En => format!(
            "Hi, {name}! I keep your balance: top it up with crypto and spend it in the shop.\nChoose an action below."
        ),
        Lang::Ru => format!(
            "Привет, {name}! Я веду ваш баланс: пополняйте его криптовалютой и тратьте в магазине.\nВыберите действие ниже."
        ),
    }
}

pub fn balance(lang: Lang, amount: Money) -> String {
    match lang {
        Lang::En => format!("Balance: {amount}"),
        Lang::Ru => format!("Баланс: {amount}"),
    }
}

pub fn history(lang: Lang, lines: &[LedgerLine]) -> String {
    if lines.is_empty() {
        return match lang {
            Lang::En => "No top-ups or purchases yet.".to_owned(),
            Lang::Ru => "Пополнений и покупок пока нет.".to_owned(),
        };
    }
    let mut out = match lang {
        Lang::En => "Latest operations:".to_owned(),
        Lang::Ru => "Последние операции:".to_owned(),
    };
    for line in lines {
        let sign = if line.amount.is_sign_negative() {
            "−"
        } else {
            "+"
        };
        out.push_str(&format!(
            "\n{} {sign}{} {}",
            line.when,
            Money::new(line.amount.abs()),
            line.description
        ));
    }
    out
}

pub fn help(lang: Lang) -> String {
    match lang {
        Lang::En => "What I can do:\n/balance — your balance\n/topup AMOUNT — top up with crypto\n/shop — the catalogue\n/history — latest top-ups and purchases\n/help — this message".to_owned(),
        Lang::Ru => "Что я умею:\n/balance — ваш баланс\n/topup СУММА — пополнить криптовалютой\n/shop — каталог\n/history — последние пополнения и покупки\n/help — эта справка".to_owned(),
    }
}

pub fn top_up_unavailable(lang: Lang) -> String {
    match lang {
        Lang::En => "Top-ups are not open yet. Please try again later.".to_owned(),
        Lang::Ru => "Пополнение пока недоступно. Попробуйте позже.".to_owned(),
    }
}

pub fn shop_empty(lang: Lang) -> String {
    match lang {
        Lang::En => "The shop has nothing for sale yet.".to_owned(),
        Lang::Ru => "В магазине пока ничего нет.".to_owned(),
    }
}

pub fn slow_down(lang: Lang) -> String {
    match lang {
        Lang::En => "Too many messages. Please slow down.".to_owned(),
        Lang::Ru => "Слишком много сообщений. Пожалуйста, помедленнее.".to_owned(),
    }
}

pub fn button_expired(lang: Lang) -> String {
    match lang {
        Lang::En => "This button is no longer valid. Send /start for a fresh menu.".to_owned(),
        Lang::Ru => "Эта кнопка больше не работает. Отправьте /start для нового меню.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn language_choice() {
        assert_eq!(Lang::from_code(Some("ru")), Lang::Ru);
        assert_eq!(Lang::from_code(Some("ru-RU")), Lang::Ru);
        assert_eq!(Lang::from_code(Some("pt")), Lang::En);
        assert_eq!(Lang::from_code(None), Lang::En);
    }

    #[test]
    fn balance_text_leads_with_the_amount() {
        assert_eq!(balance(Lang::En, Money::ZERO), "Balance: 0.00 USD");
        assert_eq!(
            balance(Lang::Ru, Money::new(Decimal::new(1250, 2))),
            "Баланс: 12.50 USD"
        );
    }
}
