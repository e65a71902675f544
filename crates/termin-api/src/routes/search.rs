//! Type-level search with keyset paging.

use super::type_level::criteria;
use super::{BaseUrl, resource_type};
use crate::bundle;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use crate::query::{encode, is_result_parameter, query_pairs};
use crate::SharedState;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use termin_fhir::{Issue, IssueCode};
use termin_store::SearchRequest;

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
    query_pairs(query)
        .filter(|(name, _)| name != "_cursor")
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// A page link: the stable query plus an optional cursor.
pub fn page_url(endpoint: &str, pairs: &[(String, String)], cursor: Option<String>) -> String {
    let mut all = pairs.to_vec();
    if let Some(cursor) = cursor {
        all.push(("_cursor".into(), cursor));
    }
    if all.is_empty() { endpoint.to_owned() } else { format!("{endpoint}?{}", encode(&all)) }
}

pub async fn search(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path(type_name): Path<String>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let query = uri.query();
    let has_criteria = query_pairs(query).any(|(name, _)| !is_result_parameter(&name));
    let conditions = if has_criteria { criteria(query, "Search")? } else { Vec::new() };
    let count = page_size(query, state.config.default_count, state.config.max_count)?;
    let after_id = query_pairs(query)
        .find(|(name, _)| name == "_cursor")
        .map(|(_, v)| v.into_owned());
    let page = state
        .service
        .search(
            &ctx,
            &SearchRequest {
                resource_type,
                conditions,
                count,
                after_id: after_id.clone(),
            },
        )
        .await?;
    let endpoint = format!("{}/{resource_type}", base.0);
    let pairs = paging_pairs(query);
    let links = bundle::links(
        page_url(&endpoint, &pairs, after_id),
        page.next_after_id.map(|next| page_url(&endpoint, &pairs, Some(next))),
    );
    let entries = page
        .matches
        .iter()
        .map(|m| bundle::search_entry(&base.0, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(bundle::searchset(page.total, links, entries)))
}
