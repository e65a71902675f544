//! Search prefixes (`eq ne gt lt ge le sa eb ap`) compiled into tests on index ranges.
//!
//! Dates: the search value is a range S = [sl, sh) (its precision), a stored value a range
//! T = [low, high), and the prefixes mean what FHIR R5 says: `eq` S contains T; `gt` T reaches
//! above S; `lt` T reaches below S; `ge` = `gt` or `eq`; `le` = `lt` or `eq`; `sa` T starts at
//! or after the end of S; `eb` T ends at or before the start of S; `ap` T overlaps S widened by
//! 10 % of the distance between S and now; `ne` is not `eq`.
//!
//! Numbers and quantities are stored as points p: `eq` p lies in the search value's precision
//! range, the comparisons use the value as written, `ap` is within 10 % of it.

use jiff::{SignedDuration, Timestamp};
use termin_store::{Comparison, RangeEnd, RangePoint, RangeTest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// Splits a leading prefix off a value (`ge2026-04-07` → `ge`, `2026-04-07`); no prefix is `eq`.
pub(crate) fn split_prefix(value: &str) -> (Prefix, &str) {
    let prefix = match value.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, value),
    };
    (prefix, &value[2..])
}

fn bound(end: RangeEnd, comparison: Comparison, point: RangePoint) -> RangeTest {
    RangeTest::Bound { end, comparison, point }
}

fn instant(t: Timestamp) -> RangePoint {
    RangePoint::Instant(Some(t))
}

/// The test for a date search value covering `[low, high)`.
pub(crate) fn date_test(prefix: Prefix, low: Timestamp, high: Timestamp, now: Timestamp) -> RangeTest {
    use Comparison::*;
    use RangeEnd::{High, Low};
    let contained = || RangeTest::All(vec![bound(Low, GreaterOrEqual, instant(low)), bound(High, LessOrEqual, instant(high))]);
    match prefix {
        Prefix::Eq => contained(),
        Prefix::Ne => RangeTest::Not(Box::new(contained())),
        Prefix::Gt => bound(High, Greater, instant(high)),
        Prefix::Lt => bound(Low, Less, instant(low)),
        Prefix::Ge => RangeTest::All(vec![
            bound(High, Greater, instant(low)),
            RangeTest::AnyOf(vec![bound(High, Greater, instant(high)), contained()]),
        ]),
        Prefix::Le => RangeTest::All(vec![
            bound(Low, Less, instant(high)),
            RangeTest::AnyOf(vec![bound(Low, Less, instant(low)), contained()]),
        ]),
        Prefix::Sa => bound(Low, GreaterOrEqual, instant(high)),
        Prefix::Eb => bound(High, LessOrEqual, instant(low)),
        Prefix::Ap => {
            let distance = if now < low {
                low.duration_since(now)
            } else if now > high {
                now.duration_since(high)
            } else {
                SignedDuration::ZERO
            };
            let margin = distance / 10;
            let wide_low = low.checked_sub(margin).unwrap_or(Timestamp::MIN);
            let wide_high = high.checked_add(margin).unwrap_or(Timestamp::MAX);
            RangeTest::All(vec![bound(Low, Less, instant(wide_high)), bound(High, Greater, instant(wide_low))])
        }
    }
}

/// T overlaps S = [low, high): the AT Scheduling IG's reading of `eq` on a Schedule's `date`
/// (its planning horizon "contains this date").
pub(crate) fn overlap_test(low: Timestamp, high: Timestamp) -> RangeTest {
    RangeTest::All(vec![
        bound(RangeEnd::Low, Comparison::Less, instant(high)),
        bound(RangeEnd::High, Comparison::Greater, instant(low)),
    ])
}

/// The test for a number written as `value`, whose precision covers `[value - half, value + half)`.
pub(crate) fn number_test(prefix: Prefix, value: f64, half: f64) -> RangeTest {
    use Comparison::*;
    let at = |comparison, point: f64| bound(RangeEnd::Low, comparison, RangePoint::Number(point));
    let equal = || RangeTest::All(vec![at(GreaterOrEqual, value - half), at(Less, value + half)]);
    match prefix {
        Prefix::Eq => equal(),
        Prefix::Ne => RangeTest::Not(Box::new(equal())),
        Prefix::Gt | Prefix::Sa => at(Greater, value),
        Prefix::Lt | Prefix::Eb => at(Less, value),
        Prefix::Ge => at(GreaterOrEqual, value),
        Prefix::Le => at(LessOrEqual, value),
        Prefix::Ap => {
            let margin = (value * 0.1).abs();
            RangeTest::All(vec![at(GreaterOrEqual, value - margin), at(LessOrEqual, value + margin)])
        }
    }
}

/// A decimal as written and half its last digit's unit: `100` → (100, 0.5), `1.50` → (1.5, 0.005),
/// `1e2` → (100, 50).
pub(crate) fn parse_decimal(text: &str) -> Option<(f64, f64)> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || text.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, fraction)| fraction.len()) as i32;
    Some((value, 0.5 * 10f64.powi(exponent - decimals)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_split_off() {
        assert_eq!(split_prefix("ge2026-04-07"), (Prefix::Ge, "2026-04-07"));
        assert_eq!(split_prefix("2026"), (Prefix::Eq, "2026"));
        assert_eq!(split_prefix("-5"), (Prefix::Eq, "-5"));
    }

    #[test]
    fn decimals_know_their_precision() {
        assert_eq!(parse_decimal("100"), Some((100.0, 0.5)));
        assert_eq!(parse_decimal("1.50"), Some((1.5, 0.005)));
        assert_eq!(parse_decimal("1e2"), Some((100.0, 50.0)));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("inf"), None);
    }
}
