//! What simulated users do, and how often: `--mix start=5,balance=30,topup=10,buy=10,
//! callback=35,junk=10` (weights, not necessarily summing to 100).

/// One thing a simulated user does; the ones after `Junk` are internal steps of scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Balance,
    /// `/topup AMOUNT`, pay the invoice at Heleket, get the credit notification.
    TopUp,
    Buy,
    /// Press a button of the main menu.
    Callback,
    /// Bad JSON, a wrong secret, an update the bot ignores, a tampered button, free text.
    Junk,
    /// Payment storm: ask for an invoice and keep it unpaid.
    Invoice,
    /// Payment storm: pay the kept invoice, get the notification.
    PayInvoice,
}

pub const MIXABLE: [(&str, Action); 6] = [
    ("start", Action::Start),
    ("balance", Action::Balance),
    ("topup", Action::TopUp),
    ("buy", Action::Buy),
    ("callback", Action::Callback),
    ("junk", Action::Junk),
];

pub const DEFAULT_MIX: &str = "start=5,balance=30,topup=10,buy=10,callback=35,junk=10";

#[derive(Debug, Clone)]
pub struct Mix {
    weights: Vec<(Action, u32)>,
    total: u32,
}

impl Mix {
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not NAME=WEIGHT"))?;
            let action = MIXABLE
                .iter()
                .find(|(n, _)| *n == name.trim())
                .map(|(_, a)| *a)
                .ok_or_else(|| {
                    let names: Vec<&str> = MIXABLE.iter().map(|(n, _)| *n).collect();
                    format!("unknown mix entry {name:?} (known: {})", names.join(", "))
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("mix weight {weight:?} is not a whole number"))?;
            weights.retain(|(a, _)| *a != action);
            weights.push((action, weight));
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the mix has no positive weight".into());
        }
        Ok(Mix { weights, total })
    }

    pub fn pick(&self, rng: &mut Rng) -> Action {
        let mut roll = rng.below(u64::from(self.total)) as u32;
        for (action, weight) in &self.weights {
            if roll < *weight {
                return *action;
            }
            roll -= weight;
        }
        self.weights[0].0
    }

    pub fn describe(&self) -> String {
        let name = |a: Action| MIXABLE.iter().find(|(_, x)| *x == a).map_or("?", |m| m.0);
        self.weights
            .iter()
            .map(|(a, w)| format!("{}={w}", name(*a)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// SplitMix64: small, fast and reproducible from `--seed`; statistical quality is plenty
/// for choosing actions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for small n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_its_weights() {
        let mix = Mix::parse("balance=3, junk=1").unwrap();
        let mut rng = Rng::new(7);
        let balance = (0..10_000)
            .filter(|_| mix.pick(&mut rng) == Action::Balance)
            .count();
        assert!((7_000..8_000).contains(&balance), "{balance}");
        assert_eq!(mix.describe(), "balance=3,junk=1");
    }

    #[test]
    fn bad_mixes_are_refused() {
        assert!(Mix::parse(DEFAULT_MIX).is_ok());
        assert!(Mix::parse("balance=0").unwrap_err().contains("no positive"));
        assert!(Mix::parse("dance=1").unwrap_err().contains("known: start"));
        assert!(Mix::parse("balance").is_err());
        assert_eq!(Mix::parse("junk=1,junk=2").unwrap().describe(), "junk=2");
    }
}
