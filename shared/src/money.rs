use rust_decimal::Decimal;
use std::fmt;

/// The currency balances are kept in. Amounts are NUMERIC in PostgreSQL and `Decimal` here:
/// never floating point.
pub const CURRENCY: &str = "USD";

/// An amount of money in `CURRENCY`, always shown with two decimals and the code: `12.50 USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn new(amount: Decimal) -> Self {
        Self(amount)
    }

    pub fn amount(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = self
            .0
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        write!(f, "{rounded:.2} {CURRENCY}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn formats_with_two_decimals_and_code() {
        assert_eq!(Money::ZERO.to_string(), "0.00 USD");
        assert_eq!(
            Money::new(Decimal::from_str("12.5").unwrap()).to_string(),
            "12.50 USD"
        );
        assert_eq!(
            Money::new(Decimal::from_str("1000").unwrap()).to_string(),
            "1000.00 USD"
        );
    }
}
