//! Index rows that change by themselves at a known instant.

use jiff::Timestamp;
use termin_store::{IndexEntries, TokenIndex};

/// Makes the current rows of the token parameter `param` hold only before `at`, and adds a row
/// `code` that holds from `at` on. A Slot held until T is `status=busy-tentative` before T and
/// `status=free` from T, so searches at any instant see its effective status without the
/// resource being rewritten when the hold expires (searches evaluate rows at `Filter::now`).
pub fn token_changes_at(entries: &mut IndexEntries, param: &str, at: Timestamp, code: &str) {
    for row in entries.tokens.iter_mut().filter(|row| row.param == param) {
        row.valid_until = Some(row.valid_until.map_or(at, |until| until.min(at)));
    }
    entries.tokens.push(TokenIndex {
        valid_from: Some(at),
        ..TokenIndex::code(param, None, code)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_value_ends_where_the_new_one_starts() {
        let at: Timestamp = "2026-04-07T10:00:00Z".parse().unwrap();
        let mut entries = IndexEntries {
            tokens: vec![
                TokenIndex::code("status", None, "busy-tentative"),
                TokenIndex::code("identifier", Some("urn:x".into()), "1"),
            ],
            ..IndexEntries::default()
        };
        token_changes_at(&mut entries, "status", at, "free");
        assert_eq!(entries.tokens[0].valid_until, Some(at));
        assert_eq!(entries.tokens[1].valid_until, None, "other parameters keep holding");
        assert_eq!(entries.tokens[2].code.as_deref(), Some("free"));
        assert_eq!(entries.tokens[2].valid_from, Some(at));
    }
}
