//! Type-level search (`GET [type]?...`, `POST [type]/_search`) with keyset paging.

use super::{BaseUrl, TypeRequest};
use crate::SharedState;
use crate::bundle::{self, SearchEntry, SearchMode};
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat, read_limited};
use crate::prefer::search_handling;
use crate::query::{encode, query_pairs};
use crate::summary;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use termin_domain::Caller;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_search::{
    CURSOR_PARAM, NoteSeverity, ParsedSearch, SearchError, SearchErrorKind, SearchOptions, SearchParameters, TotalMode,
    encode_cursor,
};
use termin_store::{Keyset, Permission, ResourceVersion};

/// Reads `_count`: absent gives the default, larger than the maximum is capped.
pub fn page_size(query: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match query_pairs(query).find(|(name, _)| name == "_count") {
        None => Ok(default),
        Some((_, value)) => value.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
            ApiError::bad_request(
                Issue::error(IssueCode::Invalid, format!("_count must be a non-negative integer, got {value:?}"))
                    .at("_count"),
            )
        }),
    }
}

/// The query pairs that identify a page sequence: everything but the cursor.
pub fn paging_pairs(query: Option<&str>) -> Vec<(String, String)> {
    owned_pairs(query).into_iter().filter(|(name, _)| name != CURSOR_PARAM).collect()
}

fn owned_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query_pairs(query).map(|(n, v)| (n.into_owned(), v.into_owned())).collect()
}

/// A page link: the stable query plus an optional cursor.
pub fn page_url(endpoint: &str, pairs: &[(String, String)], cursor: Option<String>) -> String {
    let mut all = pairs.to_vec();
    if let Some(cursor) = cursor {
        all.push((CURSOR_PARAM.into(), cursor));
    }
    if all.is_empty() { endpoint.to_owned() } else { format!("{endpoint}?{}", encode(&all)) }
}

pub async fn search(on: TypeRequest, headers: HeaderMap) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    let pairs = owned_pairs(on.uri.query());
    run(&on.state, &on.ctx, resource_type, pairs, &headers, on.format, &on.base).await
}

/// `POST [type]/_search`: the parameters come form-encoded in the body (and possibly the URL).
pub async fn search_post(on: TypeRequest, request: Request) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    let headers = request.headers().clone();
    let pairs = search_post_pairs(&on.state, on.uri.query(), request).await?;
    run(&on.state, &on.ctx, resource_type, pairs, &headers, on.format, &on.base).await
}

/// The parameters of a `POST .../_search`: the URL's, then the form-encoded body's (`415` for
/// another body type).
pub async fn search_post_pairs(
    state: &SharedState,
    query: Option<&str>,
    request: Request,
) -> Result<Vec<(String, String)>, ApiError> {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref().is_some_and(|m| m != "application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Issue::error(
                IssueCode::NotSupported,
                "POST _search takes its parameters as application/x-www-form-urlencoded",
            ),
        ));
    }
    let body = read_limited(request, &state.config).await?;
    let mut pairs = owned_pairs(query);
    pairs.extend(form_urlencoded::parse(&body).map(|(n, v)| (n.into_owned(), v.into_owned())));
    Ok(pairs)
}

async fn run(
    state: &SharedState,
    ctx: &Caller,
    resource_type: ResourceType,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let options = SearchOptions {
        server_base: Some(&base.0),
        now: jiff::Timestamp::now(),
        default_count: state.config.default_count,
        max_count: state.config.max_count,
        handling: search_handling(headers),
    };
    let parsed =
        state.domain.search_parameters().parse_search(resource_type, &pairs, &options).map_err(search_error)?;
    if let Some(auth) = &state.auth {
        crate::auth::check_reach(auth, ctx.context(), &parsed.request.filter.conditions)?;
    }
    let mut page = state.domain.resources.search(ctx, &parsed.request).await?;
    let mut withheld = 0;
    if let Some(auth) = &state.auth {
        // Includes of types the caller may not read are left out, and said so.
        page.included.retain(|version| {
            let readable = auth.may(ctx.context(), version.resource_type, Permission::Read);
            withheld += usize::from(!readable);
            readable
        });
    }
    let endpoint = format!("{}/{resource_type}", base.0);
    let stable: Vec<(String, String)> = pairs.iter().filter(|(name, _)| name != CURSOR_PARAM).cloned().collect();
    let link = |keyset: &Keyset| page_url(&endpoint, &stable, Some(encode_cursor(keyset)));
    let links = bundle::paging_links(
        page_url(&endpoint, &pairs, None),
        page.next.as_ref().map(link),
        page.previous.as_ref().map(link),
    );
    let mut entries = Vec::new();
    if let Some(outcome) = notes_outcome(&parsed, withheld) {
        entries.push(bundle::outcome_entry(outcome));
    }
    let search = state.domain.search_parameters();
    for version in &page.matches {
        entries.push(match_entry(search, &base.0, version, &parsed)?);
    }
    for version in &page.included {
        let entry = bundle::search_entry(&base.0, version, SearchMode::Include);
        entries.push(match parsed.summary {
            Some(mode) => entry.shaped(|resource| summary::summarize(search, version.resource_type, resource, mode))?,
            None => entry,
        });
    }
    let total = page.total.filter(|_| parsed.total != TotalMode::None);
    Ok(FhirResponse::new(StatusCode::OK, format).searchset(bundle::searchset(total, links, entries)))
}

pub(crate) fn search_error(error: SearchError) -> ApiError {
    let issue = Issue::error(issue_code(&error), error.message);
    ApiError::bad_request(if error.param.is_empty() { issue } else { issue.at(error.param) })
}

pub(crate) fn issue_code(error: &SearchError) -> IssueCode {
    match error.kind {
        SearchErrorKind::Invalid => IssueCode::Invalid,
        SearchErrorKind::Unsupported => IssueCode::NotSupported,
        SearchErrorKind::TooCostly => IssueCode::TooCostly,
    }
}

/// Ignored and leniently read parameters, as an OperationOutcome for the `outcome` entry.
/// The entry of a match, shaped by the search's `_elements` or `_summary`.
pub(crate) fn match_entry(
    search: &SearchParameters,
    base: &str,
    version: &ResourceVersion,
    parsed: &ParsedSearch,
) -> Result<SearchEntry, ApiError> {
    let entry = bundle::search_entry(base, version, SearchMode::Match);
    Ok(match (&parsed.elements, parsed.summary) {
        (Some(elements), _) => entry.shaped(|resource| summary::elements(resource, elements))?,
        (None, Some(mode)) => {
            entry.shaped(|resource| summary::summarize(search, version.resource_type, resource, mode))?
        }
        (None, None) => entry,
    })
}

fn notes_outcome(parsed: &ParsedSearch, withheld: usize) -> Option<Value> {
    if parsed.notes.is_empty() && withheld == 0 {
        return None;
    }
    let mut issues: Vec<Issue> = parsed
        .notes
        .iter()
        .map(|note| {
            let issue = match note.severity {
                NoteSeverity::Warning => Issue::warning(IssueCode::NotSupported, note.message.clone()),
                NoteSeverity::Information => Issue::information(note.message.clone()),
            };
            issue.at(note.param.clone())
        })
        .collect();
    if withheld > 0 {
        issues.push(Issue::warning(
            IssueCode::Forbidden,
            format!("{withheld} included resources were left out: the access token does not allow reading their type"),
        ));
    }
    Some(OperationOutcome::new(issues).to_json())
}
