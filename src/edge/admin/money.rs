//! Amounts of money in admin requests and answers: decimal strings of the pricing currency,
//! held as integer nano-units like every cost in the gateway.

use serde::Deserialize;

/// Nano-units as a decimal string with nine places, e.g. `0.000195000`.
pub fn decimal(nanos: u64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

/// An amount as a client may send it: `"5.00"` or `5`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Text(String),
    Number(serde_json::Number),
}

impl Amount {
    /// The amount in nano-units, exactly (no float rounding for a decimal string or number).
    pub fn nanos(&self) -> Result<u64, String> {
        let text = match self {
            Amount::Text(s) => s.trim().to_owned(),
            Amount::Number(n) => n.to_string(),
        };
        parse_decimal(&text).ok_or_else(|| {
            format!("must be a non-negative amount with at most 9 decimal places, such as \"5.00\"; got {text:?}")
        })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    whole.checked_mul(1_000_000_000)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(decimal(195_000), "0.000195000");
        assert_eq!(decimal(1_500_000_001), "1.500000001");
        let n = |s: &str| Amount::Text(s.into()).nanos();
        assert_eq!(n("1.00"), Ok(1_000_000_000));
        assert_eq!(n("0.1"), Ok(100_000_000));
        assert_eq!(n(".5"), Ok(500_000_000));
        assert_eq!(n("12"), Ok(12_000_000_000));
        assert!(n("-1").is_err() && n("1.0000000001").is_err() && n("").is_err());
        assert!(n("1e3").is_err() && n("99999999999999999999").is_err());
        let num: Amount = serde_json::from_str("0.25").unwrap();
        assert_eq!(num.nanos(), Ok(250_000_000));
    }
}
