//! FHIRPath Decimal: exact base-10 numbers that keep the scale they were written with.
//!
//! A mantissa and a scale (`value = mantissa / 10^scale`) in an `i128` cover FHIR's decimals
//! (at most 18 significant digits) with room for arithmetic; operations that would overflow
//! return `None`, which FHIRPath turns into an empty result.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Scale limit: more fractional digits than this are never kept.
const MAX_SCALE: u32 = 28;
/// Fractional digits a division keeps before trailing zeros are dropped.
const DIVISION_SCALE: u32 = 20;

/// An exact decimal number; equality and ordering are numeric, so `1.0 = 1.00`, while
/// printing keeps the written scale (`1.50` stays `1.50`).
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn power_of_ten(exponent: u32) -> Option<i128> {
    10i128.checked_pow(exponent)
}

impl Decimal {
    /// Parses decimal text as found in FHIR JSON: `-1.50`, `3`, or exponent forms like `1e-3`.
    pub fn parse(text: &str) -> Option<Decimal> {
        let (mantissa_text, exponent) = match text.find(['e', 'E']) {
            Some(position) => (&text[..position], text[position + 1..].parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (negative, unsigned) = match mantissa_text.as_bytes().first()? {
            b'-' => (true, &mantissa_text[1..]),
            b'+' => (false, &mantissa_text[1..]),
            _ => (false, mantissa_text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((_, "")) => return None,
            Some(parts) => parts,
            None => (unsigned, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(digit - b'0'))?;
        }
        if negative {
            mantissa = -mantissa;
        }
        let scale = i64::try_from(fraction.len()).ok()? - i64::from(exponent);
        if scale < 0 {
            let factor = power_of_ten(u32::try_from(-scale).ok()?)?;
            return Some(Decimal { mantissa: mantissa.checked_mul(factor)?, scale: 0 });
        }
        let scale = u32::try_from(scale).ok().filter(|scale| *scale <= MAX_SCALE)?;
        Some(Decimal { mantissa, scale })
    }

    pub(crate) fn from_integer(value: i64) -> Decimal {
        Decimal { mantissa: i128::from(value), scale: 0 }
    }

    /// Both mantissas at the larger of the two scales.
    fn aligned(self, other: Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(power_of_ten(scale - self.scale)?)?;
        let b = other.mantissa.checked_mul(power_of_ten(scale - other.scale)?)?;
        Some((a, b, scale))
    }

    pub(crate) fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal { mantissa: a.checked_add(b)?, scale })
    }

    pub(crate) fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(other.negated())
    }

    pub(crate) fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let product = Decimal { mantissa: self.mantissa.checked_mul(other.mantissa)?, scale: self.scale + other.scale };
        Some(product.rounded(MAX_SCALE))
    }

    /// Division to [`DIVISION_SCALE`] digits, without trailing zeros; `None` for a zero
    /// divisor (FHIRPath yields empty) or overflow.
    pub(crate) fn checked_div(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        // value = (a / 10^sa) / (b / 10^sb) = a * 10^(target + sb - sa) / b / 10^target;
        // the target scale is lowered until the scaled dividend fits.
        let minimum = self.scale.saturating_sub(other.scale);
        for target in (minimum..=DIVISION_SCALE.max(self.scale)).rev() {
            let exponent = target + other.scale - self.scale;
            let Some(dividend) = power_of_ten(exponent).and_then(|f| self.mantissa.checked_mul(f)) else {
                continue;
            };
            let quotient = dividend / other.mantissa;
            let remainder = dividend % other.mantissa;
            let round_away = remainder.unsigned_abs() * 2 >= other.mantissa.unsigned_abs();
            let sign = if (dividend < 0) != (other.mantissa < 0) { -1 } else { 1 };
            let mantissa = if round_away { quotient + sign } else { quotient };
            return Some(Decimal { mantissa, scale: target }.normalized());
        }
        None
    }

    pub(crate) fn checked_rem(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal { mantissa: a.checked_rem(b)?, scale })
    }

    /// The integer part (towards zero).
    pub(crate) fn truncated(self) -> Decimal {
        Decimal { mantissa: self.mantissa / power_of_ten(self.scale).unwrap_or(i128::MAX), scale: 0 }
    }

    pub(crate) fn negated(self) -> Decimal {
        Decimal { mantissa: -self.mantissa, scale: self.scale }
    }

    pub(crate) fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// The value as an integer, if it is one and fits.
    pub(crate) fn to_integer(self) -> Option<i64> {
        let factor = power_of_ten(self.scale)?;
        if self.mantissa % factor != 0 {
            return None;
        }
        i64::try_from(self.mantissa / factor).ok()
    }

    /// Rounded half away from zero to at most `scale` fractional digits.
    fn rounded(self, scale: u32) -> Decimal {
        if self.scale <= scale {
            return self;
        }
        let Some(divisor) = power_of_ten(self.scale - scale) else {
            return Decimal { mantissa: 0, scale };
        };
        let quotient = self.mantissa / divisor;
        let remainder = self.mantissa % divisor;
        let adjustment =
            if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() { self.mantissa.signum() } else { 0 };
        Decimal { mantissa: quotient + adjustment, scale }
    }

    /// Without trailing fractional zeros.
    fn normalized(mut self) -> Decimal {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    /// Equivalence (`~`) compares decimals at the precision of the less precise operand.
    pub(crate) fn equivalent(self, other: Decimal) -> bool {
        let scale = self.scale.min(other.scale);
        self.rounded(scale) == other.rounded(scale)
    }

    pub(crate) fn to_json(self) -> Value {
        serde_json::Number::from_str(&self.to_string()).map(Value::Number).unwrap_or(Value::Null)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.aligned(*other) {
            Some((a, b, _)) => a.cmp(&b),
            // Only reachable for magnitudes far beyond FHIR decimals; compare the integer
            // parts, which differ whenever alignment overflows.
            None => self.truncated().mantissa.cmp(&other.truncated().mantissa),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn parses_and_prints_with_the_written_scale() {
        for text in ["0", "1.50", "-0.05", "123456789012345678", "0.000000000000000001"] {
            assert_eq!(d(text).to_string(), text);
        }
        assert_eq!(d("+2").to_string(), "2");
        assert_eq!(d("1e2").to_string(), "100");
        assert_eq!(d("1.5E-3").to_string(), "0.0015");
        assert_eq!(d("-12.5e1").to_string(), "-125");
        for invalid in ["", "-", ".5", "1.", "1.2.3", "a", "1e", "1e-99"] {
            assert_eq!(Decimal::parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn compares_numerically() {
        assert_eq!(d("1.50"), d("1.5"));
        assert!(d("-2") < d("-1.99"));
        assert!(d("10") > d("9.999"));
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap().to_string(), "0.3");
        assert_eq!(d("1.50").checked_add(d("1")).unwrap().to_string(), "2.50");
        assert_eq!(d("5").checked_sub(d("7.25")).unwrap().to_string(), "-2.25");
        assert_eq!(d("1.5").checked_mul(d("2")).unwrap().to_string(), "3.0");
        assert_eq!(d("7").checked_div(d("2")).unwrap().to_string(), "3.5");
        assert_eq!(d("1").checked_div(d("3")).unwrap().to_string(), "0.33333333333333333333");
        assert_eq!(d("2").checked_div(d("3")).unwrap().to_string(), "0.66666666666666666667");
        assert_eq!(d("-1").checked_div(d("8")).unwrap().to_string(), "-0.125");
        assert_eq!(d("1").checked_div(d("0")), None);
        assert_eq!(d("5.5").checked_rem(d("2")).unwrap().to_string(), "1.5");
        assert_eq!(d("-5.5").truncated().to_string(), "-5");
        assert_eq!(d("1e30").checked_mul(d("1e30")), None);
    }

    #[test]
    fn converts_and_rounds() {
        assert_eq!(d("100.00").to_integer(), Some(100));
        assert_eq!(d("1.5").to_integer(), None);
        assert!(d("1.234").equivalent(d("1.2")));
        assert!(d("1.25").equivalent(d("1.3")));
        assert!(!d("1.26").equivalent(d("1.2")));
        assert_eq!(d("2.50").to_json().to_string(), "2.50");
    }
}
