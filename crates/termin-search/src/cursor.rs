//! Paging cursors: a keyset position as opaque URL-safe text. The cursor holds the sort values
//! and id of the row a page continues from, so any node can serve the next page without state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use termin_store::{IndexKind, Keyset, SortKey, SortParam, SortValue};

/// Encodes a keyset as base64url text.
pub fn encode_cursor(keyset: &Keyset) -> String {
    let values: Vec<Value> = keyset
        .values
        .iter()
        .map(|v| match v {
            SortValue::Integer(i) => json!(i),
            SortValue::Real(r) => json!(r),
            SortValue::Text(t) => json!(t),
        })
        .collect();
    let text = json!({"v": values, "i": keyset.id, "b": keyset.backwards}).to_string();
    URL_SAFE_NO_PAD.encode(text)
}

/// Decodes a cursor made by [`encode_cursor`] for the same sort; `None` when it is not one
/// (tampered with, or made for another `_sort`).
pub fn decode_cursor(text: &str, sort: &[SortKey]) -> Option<Keyset> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let values = value.get("v")?.as_array()?;
    let id = value.get("i")?.as_str().filter(|id| !id.contains('\0'))?;
    if values.len() != sort.len() {
        return None;
    }
    let values = values
        .iter()
        .zip(sort)
        .map(|(value, key)| match sort_column(key) {
            SortColumn::Integer => value.as_i64().map(SortValue::Integer),
            SortColumn::Real => value.as_f64().map(SortValue::Real),
            // No stored value holds U+0000 (and PostgreSQL refuses it as a parameter).
            SortColumn::Text => value.as_str().filter(|t| !t.contains('\0')).map(|t| SortValue::Text(t.to_owned())),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Keyset {
        values,
        id: id.to_owned(),
        backwards: value.get("b")?.as_bool()?,
    })
}

enum SortColumn {
    Integer,
    Real,
    Text,
}

/// How a backend represents a sort key's values: dates as integer instants, numbers and
/// distances as reals, everything else as text.
fn sort_column(key: &SortKey) -> SortColumn {
    match &key.param {
        SortParam::Id => SortColumn::Text,
        SortParam::Distance { .. } => SortColumn::Real,
        SortParam::Indexed { kind, .. } => match kind {
            IndexKind::Date => SortColumn::Integer,
            IndexKind::Number | IndexKind::Quantity | IndexKind::Position => SortColumn::Real,
            IndexKind::Token | IndexKind::String | IndexKind::Reference | IndexKind::Uri => SortColumn::Text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_other_sorts() {
        let sort = vec![
            SortKey {
                param: SortParam::Indexed {
                    param: "start".into(),
                    kind: IndexKind::Date,
                },
                descending: true,
            },
            SortKey {
                param: SortParam::Indexed {
                    param: "name".into(),
                    kind: IndexKind::String,
                },
                descending: false,
            },
        ];
        let keyset = Keyset {
            values: vec![SortValue::Integer(-5), SortValue::Text("müller".into())],
            id: "a-1".into(),
            backwards: true,
        };
        let text = encode_cursor(&keyset);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(decode_cursor(&text, &sort), Some(keyset));
        assert_eq!(decode_cursor(&text, &sort[..1]), None);
        assert_eq!(decode_cursor("not a cursor", &sort), None);
    }
}
