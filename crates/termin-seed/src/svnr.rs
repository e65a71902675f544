//! The Austrian social security number (Sozialversicherungsnummer, SVNR): a 3-digit serial
//! number, a check digit, and the birth date as DDMMYY.

use jiff::civil::Date;

/// Weights of the ten digits in the check sum; the check digit's own place weighs nothing.
const WEIGHTS: [u32; 10] = [3, 7, 9, 0, 5, 8, 4, 2, 1, 6];

/// The check digit of a serial number and birth date, or `None` when the sum leaves 10: such
/// serial numbers are not issued.
pub fn check_digit(serial: u16, birth_date: Date) -> Option<u8> {
    let digits = digits(serial, 0, birth_date);
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| u32::from(*d) * w).sum();
    match (sum % 11) as u8 {
        10 => None,
        check => Some(check),
    }
}

/// The ten-digit SVNR for a serial number (100..=999) and birth date, or `None` when that
/// serial number is not issued for the date.
pub fn svnr(serial: u16, birth_date: Date) -> Option<String> {
    let check = check_digit(serial, birth_date)?;
    Some(digits(serial, check, birth_date).iter().map(|d| char::from(b'0' + d)).collect())
}

fn digits(serial: u16, check: u8, birth_date: Date) -> [u8; 10] {
    let two = |n: i32| [(n / 10 % 10) as u8, (n % 10) as u8];
    let [s1, s2, s3] = [(serial / 100 % 10) as u8, (serial / 10 % 10) as u8, (serial % 10) as u8];
    let [day1, day2] = two(i32::from(birth_date.day()));
    let [month1, month2] = two(i32::from(birth_date.month()));
    let [year1, year2] = two(i32::from(birth_date.year()) % 100);
    [s1, s2, s3, check, day1, day2, month1, month2, year1, year2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn known_number_has_check_digit_seven() {
        // 1237 010180: 3·1 + 7·2 + 9·3 + 5·0 + 8·1 + 4·0 + 2·1 + 1·8 + 6·0 = 62 ≡ 7 (mod 11).
        assert_eq!(check_digit(123, date(1980, 1, 1)), Some(7));
        assert_eq!(svnr(123, date(1980, 1, 1)).as_deref(), Some("1237010180"));
    }

    #[test]
    fn serial_with_remainder_ten_is_not_issued() {
        // 100x 010180: 3·1 + 8·1 + 2·1 + 1·8 = 21 ≡ 10 (mod 11).
        assert_eq!(check_digit(100, date(1980, 1, 1)), None);
        assert_eq!(svnr(100, date(1980, 1, 1)), None);
    }

    #[test]
    fn every_issued_number_satisfies_the_check_sum() {
        let birth_date = date(1961, 12, 24);
        for serial in 100..=999 {
            if let Some(number) = svnr(serial, birth_date) {
                let d: Vec<u32> = number.bytes().map(|b| u32::from(b - b'0')).collect();
                let sum = 3 * d[0] + 7 * d[1] + 9 * d[2] + 5 * d[4] + 8 * d[5] + 4 * d[6] + 2 * d[7] + d[8] + 6 * d[9];
                assert_eq!(sum % 11, d[3], "{number}");
                assert!(number.ends_with("241261"), "{number}");
            }
        }
    }
}
