//! Instance, type and system history, newest first, paged by the history position (one
//! sequence over all types, so a system history pages across types in write order).

use super::search::{page_size, page_url, paging_pairs};
use super::{BaseUrl, TypeRequest, resource_type, system_types};
use crate::SharedState;
use crate::bundle;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use crate::query::query_pairs;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use termin_domain::Caller;
use termin_domain::DomainError;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{HistoryRequest, TypeHistory};

pub async fn instance_history(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    history(&state, &ctx, Scope::Instance(resource_type, id), uri.query(), format, &base).await
}

pub async fn type_history(on: TypeRequest) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    history(&on.state, &on.ctx, Scope::Type(resource_type), on.uri.query(), on.format, &on.base).await
}

/// `GET [base]/_history`: the history of every type the caller may search (or of those named
/// by `_type`), each limited as its type history would be.
pub async fn system_history(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let named = query_pairs(uri.query()).find(|(name, _)| name == "_type").map(|(_, value)| value.into_owned());
    let types = system_types(&state, &ctx, named.as_deref())?;
    history(&state, &ctx, Scope::System(types), uri.query(), format, &base).await
}

/// Whose history a request lists.
enum Scope {
    Instance(ResourceType, String),
    Type(ResourceType),
    System(Vec<ResourceType>),
}

impl Scope {
    fn endpoint(&self, base: &str) -> String {
        match self {
            Scope::Instance(resource_type, id) => format!("{base}/{resource_type}/{id}/_history"),
            Scope::Type(resource_type) => format!("{base}/{resource_type}/_history"),
            Scope::System(_) => format!("{base}/_history"),
        }
    }
}

async fn history(
    state: &SharedState,
    ctx: &Caller,
    scope: Scope,
    query: Option<&str>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let endpoint = &scope.endpoint(&base.0);
    let system = matches!(scope, Scope::System(_));
    let (types, id) = match scope {
        Scope::Instance(resource_type, id) => (vec![resource_type], Some(id)),
        Scope::Type(resource_type) => (vec![resource_type], None),
        Scope::System(types) => (types, None),
    };
    let count = page_size(query, state.config.default_count, state.config.max_count)?;
    let before = match query_pairs(query).find(|(name, _)| name == "_cursor") {
        None => None,
        Some((_, value)) => Some(value.parse::<u64>().map_err(|_| {
            ApiError::bad_request(Issue::error(IssueCode::Invalid, "_cursor is not a history position").at("_cursor"))
        })?),
    };
    let since = match query_pairs(query).find(|(name, _)| name == "_since") {
        None => None,
        Some((_, value)) => Some(value.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::bad_request(
                Issue::error(
                    IssueCode::Invalid,
                    format!(
                        "_since must be an instant with a time zone, e.g. 2026-04-07T08:00:00+02:00, not {value:?}"
                    ),
                )
                .at("_since"),
            )
        })?),
    };
    let at = match query_pairs(query).find(|(name, _)| name == "_at") {
        None => None,
        Some((_, value)) => {
            let range = termin_search::parse_range(&value, state.domain.search_parameters().time_zone());
            let bounds = range.and_then(|r| r.low.zip(r.high));
            Some(bounds.ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(
                        IssueCode::Invalid,
                        format!("_at must be a date or dateTime, e.g. 2026-04-07 or 2026-04-07T08:00:00+02:00, not {value:?}"),
                    )
                    .at("_at"),
                )
            })?)
        }
    };
    let request = HistoryRequest {
        types: types.iter().copied().map(TypeHistory::all).collect(),
        id: id.clone(),
        count,
        before,
        since,
        at,
    };
    let page = if system {
        state.domain.resources.system_history(ctx, &request).await?
    } else {
        state.domain.resources.history(ctx, &request).await?
    };
    if let (Some(id), [resource_type]) = (&id, types.as_slice())
        && page.total == 0
    {
        let resource_type = *resource_type;
        let unknown = || ApiError::not_found(format!("{resource_type}/{id} is not known"));
        match since.or(at.map(|(low, _)| low)) {
            None => return Err(unknown()),
            // Every resource has a first version, even one outside `_since` or `_at`.
            Some(_) => match state.domain.resources.vread(ctx, resource_type, id, 1).await {
                Ok(_) => {}
                Err(DomainError::NotFound(_)) => return Err(unknown()),
                Err(other) => return Err(other.into()),
            },
        }
    }
    let pairs = paging_pairs(query);
    let links = bundle::links(
        page_url(endpoint, &pairs, before.map(|b| b.to_string())),
        page.next_before.map(|next| page_url(endpoint, &pairs, Some(next.to_string()))),
    );
    let entries = page.entries.iter().map(|e| bundle::history_entry(&base.0, e)).collect::<Result<Vec<_>, _>>()?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(bundle::history(page.total, links, entries)))
}
