//! Kubernetes resource quantities ("500m", "64Gi", "1.5", "2e3") parsed exactly into the
//! integer units the core works in: millicores for CPU, bytes for memory.
//!
//! The grammar is the one of `resource.Quantity`: an unsigned decimal number, then either a
//! binary suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m k M G T P E) or an exponent
//! (`e3`, `E-2`). Values are rounded up to the unit, as the API server does for CPU.
//! Negative values, NaN-like text and anything that overflows `u64` are errors.

use std::fmt;

/// Why a quantity string was rejected. The message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("quantity {0:?} is negative; resource amounts must be >= 0")]
    Negative(String),
    #[error("quantity {0:?} is not a number followed by a unit (e.g. \"500m\", \"64Gi\", \"2\")")]
    Malformed(String),
    #[error(
        "quantity {0:?} has unknown suffix {1:?} (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)"
    )]
    UnknownSuffix(String, String),
    #[error("quantity {0:?} is too large")]
    Overflow(String),
    #[error("quantity {0:?} has an exponent outside -{MAX_EXPONENT}..={MAX_EXPONENT}")]
    Exponent(String),
}

/// Largest exponent (`e100`, `e-100`) a quantity may carry. A u64 ends near 1.8e19 and the
/// mantissa is at most 39 digits, so beyond this an exponent is a typo or an attack, never an
/// amount; bounding it keeps every step of the arithmetic in range.
pub const MAX_EXPONENT: i32 = 100;

/// The scale a suffix applies: `value * 2^bin * 10^dec`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    bin: u32,
    dec: i32,
}

fn suffix_scale(suffix: &str) -> Option<Scale> {
    let (bin, dec) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => return None,
    };
    Some(Scale { bin, dec })
}

/// A parsed quantity kept as an exact rational `mantissa * 2^bin * 10^dec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    mantissa: u128,
    bin: u32,
    dec: i32,
}

fn parse_exact(text: &str) -> Result<Exact, QuantityError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    if s.starts_with('-') {
        return Err(QuantityError::Negative(text.to_string()));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(QuantityError::Malformed(text.to_string()));
    }
    let overflow = || QuantityError::Overflow(text.to_string());
    let mut mantissa: u128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')))
            .ok_or_else(overflow)?;
    }
    let frac_digits = i32::try_from(frac_part.len()).map_err(|_| overflow())?;
    let scale = match (suffix_scale(rest), rest.strip_prefix(['e', 'E'])) {
        (Some(scale), _) => scale,
        (None, Some(exp)) if !exp.is_empty() => Scale {
            bin: 0,
            dec: parse_exponent(text, exp)?,
        },
        _ => {
            return Err(QuantityError::UnknownSuffix(
                text.to_string(),
                rest.to_string(),
            ));
        }
    };
    Ok(Exact {
        mantissa,
        bin: scale.bin,
        dec: scale.dec.checked_sub(frac_digits).ok_or_else(overflow)?,
    })
}

/// The exponent after `e`: an optionally signed integer within [`MAX_EXPONENT`].
fn parse_exponent(text: &str, exp: &str) -> Result<i32, QuantityError> {
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Malformed(text.to_string()));
    }
    exp.parse::<i32>()
        .ok()
        .filter(|e| (-MAX_EXPONENT..=MAX_EXPONENT).contains(e))
        .ok_or_else(|| QuantityError::Exponent(text.to_string()))
}

impl Exact {
    /// `ceil(self * 10^unit_exp)` as u64, or None on overflow.
    fn ceil_scaled(self, unit_exp: i32) -> Option<u64> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let dec = self.dec.checked_add(unit_exp)?;
        let mut num = self.mantissa.checked_mul(1u128.checked_shl(self.bin)?)?;
        let mut den: u128 = 1;
        if dec >= 0 {
            num = num.checked_mul(10u128.checked_pow(dec.unsigned_abs())?)?;
        } else {
            // A divisor beyond 10^38 rounds any u128 numerator up to 1.
            match 10u128.checked_pow(dec.unsigned_abs()) {
                Some(d) => den = d,
                None => return Some(1),
            }
        }
        u64::try_from(num.div_ceil(den)).ok()
    }
}

/// Parse a CPU quantity into millicores ("500m" -> 500, "2" -> 2000, "0.1" -> 100).
pub fn parse_cpu_milli(text: &str) -> Result<u64, QuantityError> {
    parse_exact(text)?
        .ceil_scaled(3)
        .ok_or_else(|| QuantityError::Overflow(text.to_string()))
}

/// Parse a memory quantity into bytes ("64Gi" -> 68719476736, "1G" -> 10^9).
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    parse_exact(text)?
        .ceil_scaled(0)
        .ok_or_else(|| QuantityError::Overflow(text.to_string()))
}

/// Parse a plain count ("2", "8"); fractions are rejected rather than rounded.
pub fn parse_count(text: &str) -> Result<u64, QuantityError> {
    let exact = parse_exact(text)?;
    let whole = exact
        .ceil_scaled(0)
        .ok_or_else(|| QuantityError::Overflow(text.to_string()))?;
    let milli = exact
        .ceil_scaled(3)
        .ok_or_else(|| QuantityError::Overflow(text.to_string()))?;
    if whole.checked_mul(1000) != Some(milli) {
        return Err(QuantityError::Malformed(text.to_string()));
    }
    Ok(whole)
}

/// Bytes rendered the way `kubectl` users read them (binary suffix when exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
        for (i, unit) in UNITS.iter().enumerate() {
            let size = 1u64 << (10 * (6 - i));
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{}", self.0 / size, unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Millicores rendered as `kubectl` shows them ("500m", "2").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millicores(pub u64);

impl fmt::Display for Millicores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        for (text, milli) in [
            ("500m", 500),
            ("2", 2000),
            ("0.1", 100),
            ("1.5", 1500),
            (".5", 500),
            ("2e3", 2_000_000),
            ("1k", 1_000_000),
            ("100u", 1),
            ("1n", 1),
            ("0", 0),
            ("+3", 3000),
            (" 4 ", 4000),
        ] {
            assert_eq!(parse_cpu_milli(text), Ok(milli), "{text}");
        }
    }

    #[test]
    fn memory_quantities() {
        for (text, bytes) in [
            ("64Gi", 64 << 30),
            ("1Ki", 1024),
            ("1.5Mi", 1_572_864),
            ("1G", 1_000_000_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("1m", 1),
            ("8Ei", 8 << 60),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_quantities_name_the_problem() {
        assert_eq!(parse_cpu_milli(""), Err(QuantityError::Empty));
        assert_eq!(
            parse_cpu_milli("-1"),
            Err(QuantityError::Negative("-1".into()))
        );
        assert!(matches!(
            parse_bytes("64GB"),
            Err(QuantityError::UnknownSuffix(_, s)) if s == "GB"
        ));
        for bad in ["abc", "NaN", "inf", ".", "1.2.3", "e3", "1e", "1ee3"] {
            assert!(parse_bytes(bad).is_err(), "{bad} should be rejected");
        }
        assert!(matches!(
            parse_bytes("16Ei"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(matches!(
            parse_bytes("99999999999999999999999999999999999999999"),
            Err(QuantityError::Overflow(_))
        ));
        let msg = parse_bytes("64GB").unwrap_err().to_string();
        assert!(msg.contains("64GB") && msg.contains("Gi"), "{msg}");
    }

    /// Issue 16, defect 8: exponents are checked, not wrapped or silently rounded; every bad
    /// quantity gets the message a user sees.
    #[test]
    fn bad_quantities_table() {
        for (text, want) in [
            ("", "empty quantity"),
            (
                "-1",
                r#"quantity "-1" is negative; resource amounts must be >= 0"#,
            ),
            (
                "1e-2147483648",
                r#"quantity "1e-2147483648" has an exponent outside -100..=100"#,
            ),
            (
                "0.1e-2147483648",
                r#"quantity "0.1e-2147483648" has an exponent outside -100..=100"#,
            ),
            (
                "1e2147483647",
                r#"quantity "1e2147483647" has an exponent outside -100..=100"#,
            ),
            (
                "1e99999999999999999999",
                r#"quantity "1e99999999999999999999" has an exponent outside -100..=100"#,
            ),
            (
                "1e-101",
                r#"quantity "1e-101" has an exponent outside -100..=100"#,
            ),
            (
                "1e101",
                r#"quantity "1e101" has an exponent outside -100..=100"#,
            ),
            ("1e20", r#"quantity "1e20" is too large"#),
            ("16Ei", r#"quantity "16Ei" is too large"#),
            (
                "1e1.5",
                r#"quantity "1e1.5" is not a number followed by a unit (e.g. "500m", "64Gi", "2")"#,
            ),
            (
                "1e+",
                r#"quantity "1e+" is not a number followed by a unit (e.g. "500m", "64Gi", "2")"#,
            ),
            (
                "e3",
                r#"quantity "e3" is not a number followed by a unit (e.g. "500m", "64Gi", "2")"#,
            ),
            (
                "64GB",
                r#"quantity "64GB" has unknown suffix "GB" (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)"#,
            ),
        ] {
            let got = parse_bytes(text).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()), "{text}");
        }
        // At the edge of the range, tiny amounts still round up to one unit.
        assert_eq!(parse_cpu_milli("1e-100"), Ok(1));
        assert_eq!(parse_bytes("0.1e-100"), Ok(1));
    }

    #[test]
    fn counts_reject_fractions() {
        assert_eq!(parse_count("8"), Ok(8));
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("500m").is_err());
    }

    #[test]
    fn display_round_trips() {
        for bytes in [0u64, 1, 1024, 64 << 30, 1_000_000_000] {
            assert_eq!(parse_bytes(&Bytes(bytes).to_string()), Ok(bytes));
        }
        for milli in [0u64, 1, 500, 2000, 2500] {
            assert_eq!(parse_cpu_milli(&Millicores(milli).to_string()), Ok(milli));
        }
    }
}
