//! System search: `GET [base]?...` and `POST [base]/_search` across the types of `_type` (or
//! every type the caller may search). The query is parsed for each type strictly, so a
//! parameter some listed type does not define is a `400` naming it; the domain merges the
//! types' matches and keeps one position per type, which the `_cursor` of the next link
//! carries.

use super::search::{issue_code, page_url, search_post_pairs};
use super::{BaseUrl, system_types};
use crate::SharedState;
use crate::bundle;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use crate::query::query_pairs;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use termin_domain::{Caller, Continuation, SystemSearch};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_search::{CURSOR_PARAM, Handling, ParsedSearch, SearchOptions, TotalMode, decode_cursor, encode_cursor};

/// Parameters a search across types does not take: includes name one source type.
const SINGLE_TYPE_ONLY: [&str; 6] =
    ["_include", "_include:iterate", "_include:recurse", "_revinclude", "_revinclude:iterate", "_revinclude:recurse"];

/// `GET [base]?...` (called by the base endpoint when the query is more than `_format`/`_pretty`).
pub async fn system_search_get(
    state: &SharedState,
    ctx: &Caller,
    query: Option<&str>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let pairs = query_pairs(query).map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
    run(state, ctx, pairs, format, base).await
}

/// `POST [base]/_search`: the parameters come form-encoded in the body (and possibly the URL).
pub async fn system_search_post(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
    request: Request,
) -> Result<FhirResponse, ApiError> {
    let pairs = search_post_pairs(&state, uri.query(), request).await?;
    run(&state, &ctx, pairs, format, &base).await
}

async fn run(
    state: &SharedState,
    ctx: &Caller,
    pairs: Vec<(String, String)>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let mut named = None;
    let mut cursor = None;
    let mut criteria = Vec::new();
    for (name, value) in &pairs {
        match name.as_str() {
            "_type" if named.is_none() => named = Some(value.clone()),
            "_type" => {
                return Err(invalid("_type", "_type may be given once (a comma-separated list)"));
            }
            CURSOR_PARAM => cursor = Some(value.clone()),
            _ if SINGLE_TYPE_ONLY.contains(&name.as_str()) => {
                return Err(ApiError::bad_request(
                    Issue::error(
                        IssueCode::NotSupported,
                        format!(
                            "{name} is not supported in a search across types; search one type: GET [base]/[type]?..."
                        ),
                    )
                    .at(name.clone()),
                ));
            }
            _ => criteria.push((name.clone(), value.clone())),
        }
    }
    let types = system_types(state, ctx, named.as_deref())?;
    let options = SearchOptions {
        server_base: Some(&base.0),
        now: jiff::Timestamp::now(),
        default_count: state.config.default_count,
        max_count: state.config.max_count,
        // A parameter one of the types does not define cannot be ignored for some types only.
        handling: Handling::Strict,
    };
    let search = state.domain.search_parameters();
    let mut parsed: Vec<(ResourceType, ParsedSearch)> = Vec::with_capacity(types.len());
    for resource_type in &types {
        let one = search.parse_search(*resource_type, &criteria, &options).map_err(|error| {
            let message = format!(
                "{} (for {resource_type}: a search across types takes only parameters every listed type defines)",
                error.message
            );
            let issue = Issue::error(issue_code(&error), message);
            ApiError::bad_request(if error.param.is_empty() { issue } else { issue.at(error.param) })
        })?;
        if let Some(auth) = &state.auth {
            crate::auth::check_reach(auth, ctx.context(), &one.request.filter.conditions)?;
        }
        parsed.push((*resource_type, one));
    }
    let continuations = match &cursor {
        None => vec![Continuation::Start; parsed.len()],
        Some(text) => decode_positions(text, &parsed).ok_or_else(|| {
            invalid(CURSOR_PARAM, "the _cursor does not belong to this search; follow the Bundle's links")
        })?,
    };
    let Some((_, first)) = parsed.first() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Issue::error(IssueCode::Exception, "no type to search"),
        ));
    };
    let count = first.request.count;
    let total_mode = first.total;
    let system =
        SystemSearch { searches: parsed.iter().map(|(_, p)| p.request.clone()).zip(continuations).collect(), count };
    let page = state.domain.resources.search_system(ctx, &system).await?;
    let endpoint = base.0.clone();
    let mut stable = criteria.clone();
    if let Some(named) = &named {
        stable.insert(0, ("_type".to_owned(), named.clone()));
    }
    let self_pairs = match &cursor {
        Some(cursor) => [stable.clone(), vec![(CURSOR_PARAM.to_owned(), cursor.clone())]].concat(),
        None => stable.clone(),
    };
    let next = page.next.as_ref().map(|positions| page_url(&endpoint, &stable, Some(encode_positions(positions))));
    let links = bundle::links(page_url(&endpoint, &self_pairs, None), next);
    let mut entries = Vec::with_capacity(page.matches.len());
    for version in &page.matches {
        let Some((_, parsed)) = parsed.iter().find(|(t, _)| *t == version.resource_type) else {
            continue;
        };
        entries.push(crate::routes::search::match_entry(search, &base.0, version, parsed)?);
    }
    let total = page.total.filter(|_| total_mode != TotalMode::None);
    Ok(FhirResponse::new(StatusCode::OK, format).searchset(bundle::searchset(total, links, entries)))
}

fn invalid(param: &str, message: &str) -> ApiError {
    ApiError::bad_request(Issue::error(IssueCode::Invalid, message).at(param))
}

/// The `_cursor` of a system search: per type, its keyset cursor, or `null` when done; a type
/// not named has not started.
fn encode_positions(positions: &[(ResourceType, Continuation)]) -> String {
    let mut map = Map::new();
    for (resource_type, continuation) in positions {
        match continuation {
            Continuation::Start => {}
            Continuation::After(keyset) => {
                map.insert(resource_type.as_str().to_owned(), Value::String(encode_cursor(keyset)));
            }
            Continuation::Done => {
                map.insert(resource_type.as_str().to_owned(), Value::Null);
            }
        }
    }
    URL_SAFE_NO_PAD.encode(Value::Object(map).to_string())
}

/// Reads a cursor of [`encode_positions`] for these searches; `None` when it is not one of
/// theirs (tampered with, or made for other types or another `_sort`).
fn decode_positions(text: &str, parsed: &[(ResourceType, ParsedSearch)]) -> Option<Vec<Continuation>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let Value::Object(map) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    if map.keys().any(|name| !parsed.iter().any(|(t, _)| t.as_str() == name)) {
        return None;
    }
    parsed
        .iter()
        .map(|(resource_type, parsed)| match map.get(resource_type.as_str()) {
            None => Some(Continuation::Start),
            Some(Value::Null) => Some(Continuation::Done),
            Some(Value::String(cursor)) => decode_cursor(cursor, &parsed.request.sort).map(Continuation::After),
            Some(_) => None,
        })
        .collect()
}
