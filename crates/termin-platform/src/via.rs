//! Loop detection for cascades: every request a platform sends upstream carries the chain of
//! platforms it passed (`X-Termin-Via: outer, inner`); a platform that finds its own name in the
//! chain of an incoming request refuses it, so a misconfigured cycle ends at its first repeat.

/// The request header carrying the chain, oldest platform first.
pub const HEADER: &str = "x-termin-via";

/// Longest chain accepted: deeper cascades are refused like a loop (each level multiplies the
/// requests, and no real deployment nests this deep).
pub const MAX_DEPTH: usize = 8;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This platform is already in the chain.
    Loop(Vec<String>),
    TooDeep(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Loop(chain) => write!(f, "Request loop: it already passed this platform (via {})", chain.join(", ")),
            Refusal::TooDeep(depth) => {
                write!(f, "The request passed {depth} platforms; at most {MAX_DEPTH} may be cascaded")
            }
        }
    }
}

/// The chain an incoming request carries (every `X-Termin-Via` value, comma-separated names).
pub fn chain<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks an incoming chain at platform `own`, and gives the chain to send upstream.
pub fn extend(mut chain: Vec<String>, own: &str) -> Result<Vec<String>, Refusal> {
    if chain.iter().any(|name| name == own) {
        return Err(Refusal::Loop(chain));
    }
    if chain.len() >= MAX_DEPTH {
        return Err(Refusal::TooDeep(chain.len()));
    }
    chain.push(own.to_owned());
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_refuses_a_chain_it_is_in() {
        let incoming = chain(["a, b", "c"]);
        assert_eq!(incoming, ["a", "b", "c"]);
        assert_eq!(extend(incoming.clone(), "d").unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(extend(incoming, "b"), Err(Refusal::Loop(vec!["a".into(), "b".into(), "c".into()])));
        let deep: Vec<String> = (0..MAX_DEPTH).map(|i| format!("p{i}")).collect();
        assert_eq!(extend(deep, "x"), Err(Refusal::TooDeep(MAX_DEPTH)));
        assert_eq!(extend(Vec::new(), "x").unwrap(), ["x"]);
    }
}
