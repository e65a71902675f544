//! String normalization for search: case- and accent-insensitive matching.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower case without accents: `Müller` and `MULLER` both become `muller`. Stored index values
/// and search values go through the same function, so they compare byte for byte.
pub fn normalize(text: &str) -> String {
    text.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(normalize("Müller"), "muller");
        assert_eq!(normalize("MÜLLER"), "muller");
        assert_eq!(normalize("Élodie Ångström"), "elodie angstrom");
        assert_eq!(normalize("Straße"), "straße");
    }
}
