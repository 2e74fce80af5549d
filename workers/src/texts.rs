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

pub fn payments_unavailable(lang: Lang) -> String {
    match lang {
        Lang::En => {
            "Payments are temporarily unavailable. Please try again in a few minutes.".to_owned()
        }
        Lang::Ru => "Платежи временно недоступны. Попробуйте через несколько минут.".to_owned(),
    }
}

pub fn choose_amount(lang: Lang) -> String {
    match lang {
        Lang::En => "How much would you like to top up?".to_owned(),
        Lang::Ru => "На какую сумму пополнить?".to_owned(),
    }
}

pub fn other_amount_label(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Other amount",
        Lang::Ru => "Другая сумма",
    }
}

pub fn ask_amount(lang: Lang, min: Money, max: Money) -> String {
    match lang {
        Lang::En => format!("Send the amount in USD, from {min} to {max}, e.g. 12.50"),
        Lang::Ru => format!("Отправьте сумму в USD, от {min} до {max}, например 12.50"),
    }
}

/// Why an amount was refused.
pub enum AmountProblem {
    NotANumber,
    NotPositive,
    TooManyDecimals,
    BelowMinimum(Money),
    AboveMaximum(Money),
}

pub fn amount_refused(lang: Lang, problem: &AmountProblem) -> String {
    let reason = match (lang, problem) {
        (Lang::En, AmountProblem::NotANumber) => "that is not an amount".to_owned(),
        (Lang::En, AmountProblem::NotPositive) => "the amount must be positive".to_owned(),
        (Lang::En, AmountProblem::TooManyDecimals) => "at most 2 decimals, e.g. 10.25".to_owned(),
        (Lang::En, AmountProblem::BelowMinimum(m)) => format!("the minimum is {m}"),
        (Lang::En, AmountProblem::AboveMaximum(m)) => format!("the maximum is {m}"),
        (Lang::Ru, AmountProblem::NotANumber) => "это не сумма".to_owned(),
        (Lang::Ru, AmountProblem::NotPositive) => "сумма должна быть больше нуля".to_owned(),
        (Lang::Ru, AmountProblem::TooManyDecimals) => {
            "не больше двух знаков после точки, например 10.25".to_owned()
        }
        (Lang::Ru, AmountProblem::BelowMinimum(m)) => format!("минимум {m}"),
        (Lang::Ru, AmountProblem::AboveMaximum(m)) => format!("максимум {m}"),
    };
    match lang {
        Lang::En => format!("Cannot top up: {reason}. Usage: /topup AMOUNT"),
        Lang::Ru => format!("Не удалось пополнить: {reason}. Пример: /topup 10"),
    }
}

pub fn invoice_ready(lang: Lang, amount: Money) -> String {
    match lang {
        Lang::En => format!("Invoice for {amount} is ready. Pay it with crypto on the Heleket page; I will tell you when the payment arrives."),
        Lang::Ru => format!("Счёт на {amount} готов. Оплатите его криптовалютой на странице Heleket; я сообщу, когда платёж поступит."),
    }
}

pub fn pay_button(lang: Lang, amount: Money) -> String {
    match lang {
        Lang::En => format!("Pay {amount}"),
        Lang::Ru => format!("Оплатить {amount}"),
    }
}

pub fn too_many_invoices(lang: Lang) -> String {
    match lang {
        Lang::En => "Too many invoices in a short time. Please wait a minute.".to_owned(),
        Lang::Ru => "Слишком много счетов за короткое время. Подождите минуту.".to_owned(),
    }
}

pub fn invoice_failed(lang: Lang) -> String {
    match lang {
        Lang::En => {
            "The payment provider refused to create the invoice. Please try another amount later."
                .to_owned()
        }
        Lang::Ru => "Платёжная система не создала счёт. Попробуйте другую сумму позже.".to_owned(),
    }
}

pub fn shop_empty(lang: Lang) -> String {
    match lang {
        Lang::En => "The shop has nothing for sale right now.".to_owned(),
        Lang::Ru => "В магазине сейчас ничего нет.".to_owned(),
    }
}

pub fn catalogue(lang: Lang, products: &[crate::repo::shop::Product]) -> String {
    let mut out = match lang {
        Lang::En => "Shop (buy with the buttons or /buy ID):".to_owned(),
        Lang::Ru => "Магазин (покупка кнопками или /buy ID):".to_owned(),
    };
    for p in products {
        let stock = match (p.stock, lang) {
            (None, _) => String::new(),
            (Some(0), Lang::En) => " — sold out".to_owned(),
            (Some(0), Lang::Ru) => " — нет в наличии".to_owned(),
            (Some(n), Lang::En) => format!(" — {n} left"),
            (Some(n), Lang::Ru) => format!(" — осталось {n}"),
        };
        out.push_str(&format!(
            "\n{}. {} — {}{stock}",
            p.id,
            p.title,
            Money::new(p.price)
        ));
        if !p.description.is_empty() {
            out.push_str(&format!("\n    {}", p.description));
        }
    }
    out
}

pub fn buy_button(title: &str, price: Money) -> String {
    format!("{title} — {price}")
}

pub fn purchase(lang: Lang, outcome: &crate::repo::shop::Purchase) -> String {
    use crate::repo::shop::Purchase;
    match (lang, outcome) {
        (
            Lang::En,
            Purchase::Bought {
                title,
                price,
                balance,
                delivery,
            },
        ) => format!(
            "You bought {title} for {}. Balance: {}\n{delivery}",
            Money::new(*price),
            Money::new(*balance)
        ),
        (
            Lang::Ru,
            Purchase::Bought {
                title,
                price,
                balance,
                delivery,
            },
        ) => format!(
            "Вы купили {title} за {}. Баланс: {}\n{delivery}",
            Money::new(*price),
            Money::new(*balance)
        ),
        (
            Lang::En,
            Purchase::NotEnoughBalance {
                title,
                price,
                balance,
            },
        ) => format!(
            "Not enough balance: {title} costs {}, you have {}. Top up with /topup.",
            Money::new(*price),
            Money::new(*balance)
        ),
        (
            Lang::Ru,
            Purchase::NotEnoughBalance {
                title,
                price,
                balance,
            },
        ) => format!(
            "Недостаточно средств: {title} стоит {}, у вас {}. Пополните баланс: /topup.",
            Money::new(*price),
            Money::new(*balance)
        ),
        (Lang::En, Purchase::OutOfStock { title }) => {
            format!("{title} is sold out. Nothing was charged.")
        }
        (Lang::Ru, Purchase::OutOfStock { title }) => {
            format!("{title} закончился. Деньги не списаны.")
        }
        (Lang::En, Purchase::NoSuchProduct) => "No such product. See /shop.".to_owned(),
        (Lang::Ru, Purchase::NoSuchProduct) => "Такого товара нет. Смотрите /shop.".to_owned(),
    }
}

pub fn buy_usage(lang: Lang) -> String {
    match lang {
        Lang::En => "Usage: /buy ID (see /shop)".to_owned(),
        Lang::Ru => "Пример: /buy 1 (смотрите /shop)".to_owned(),
    }
}

pub fn payment_received(lang: Lang, credited: Money, balance: Money) -> String {
    match lang {
        Lang::En => format!("Payment received: +{credited}. Balance: {balance}"),
        Lang::Ru => format!("Платёж получен: +{credited}. Баланс: {balance}"),
    }
}

/// Stream health for `/stats`: (stream, pending, lag, dead letters).
pub type StreamFigures = (&'static str, u64, u64, u64);

/// For operators: kept in English, the operators' working language.
pub fn stats(s: &crate::repo::stats::Stats, streams: &[StreamFigures]) -> String {
    let mut out = format!(
        "Users: {} ({} blocked the bot)\nToday (UTC): credited {}, {} purchases for {}\nInvoices today:",
        s.users,
        s.blocked_users,
        Money::new(s.credited_today),
        s.purchases_today,
        Money::new(s.spent_today),
    );
    if s.payments_today.is_empty() {
        out.push_str(" none");
    }
    for (status, n) in &s.payments_today {
        out.push_str(&format!("\n  {status}: {n}"));
    }
    out.push_str("\nStreams (pending / lag / dead letters):");
    for (name, pending, lag, dead) in streams {
        out.push_str(&format!("\n  {name}: {pending} / {lag} / {dead}"));
    }
    out
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
