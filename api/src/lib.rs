//! The REST API: axum routers (one module per resource, owning its request and response types),
//! extractors that authorize (`access`) and turn bad input into problem+json (`extract`), the
//! single error type, and the OpenAPI document generated from the handlers. Handlers are thin:
//! extract and validate, call a command or a query, map to a response.

mod access;
mod ad_accounts;
mod api_keys;
mod as_reported;
mod audit;
mod auth;
mod caller;
mod campaigns;
mod connections;
mod consistency;
mod context;
mod error;
mod events;
mod extract;
mod hardening;
mod health;
mod insights;
mod integer;
mod log;
mod members;
mod metrics;
mod oauth;
mod openapi;
mod paging;
mod personal;
mod rate_limit;
mod responses;
mod schemas;
mod streams;
mod syncs;
mod text;
mod workspaces;

use adledger_commands::identity::Identity;
use adledger_commands::Commands;
use adledger_infra::EventStore;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use consistency::Consistency;
pub use error::{ApiError, Problem};
pub use hardening::HttpPolicy;
pub use rate_limit::RateLimiter;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub commands: Commands,
    pub identity: Identity,
    /// Requests per minute per signed-in user or API key.
    pub caller_limiter: Option<rate_limit::RateLimiter>,
    pub store: EventStore,
    /// The same store for the reads that answer requests: the database cancels any statement
    /// of it that runs past [`HttpPolicy::statement_timeout`].
    pub reads: EventStore,
    pub readiness: Readiness,
    pub http: HttpPolicy,
    /// What each caller's next reads must see of their writes (read-your-writes).
    pub consistency: std::sync::Arc<Consistency>,
}

/// What `/readyz` checks besides the database and migrations, and how long it may take.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// The relay's topic, when this deployment publishes to Kafka: its lag is reported, and
    /// counts when projections read that topic.
    pub relay_topic: Option<String>,
    /// Projections are fed from this Kafka topic: their lag is counted in messages on it (their
    /// Postgres-log checkpoints do not move).
    pub projections_from_kafka: Option<adledger_infra::kafka::KafkaConfig>,
    /// How stale the log and the read side may get while still ready.
    pub bounds: adledger_projections::ReadinessBounds,
    /// `/readyz` and `/metrics` answer within this whatever the database does (503
    /// `database-unavailable` past it): a probe must get an answer before its own timeout.
    pub probe_timeout: std::time::Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            relay_topic: None,
            projections_from_kafka: None,
            bounds: Default::default(),
            probe_timeout: Self::DEFAULT_PROBE_TIMEOUT,
        }
    }
}

impl Readiness {
    pub const DEFAULT_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
}

impl Readiness {
    /// What `/readyz`, `/metrics` and `/v1/projections` compute the read side's status over.
    pub fn deployment(&self) -> adledger_projections::Deployment<'_> {
        adledger_projections::Deployment {
            relay_topic: self.relay_topic.as_deref(),
            projections_from_kafka: self.projections_from_kafka.as_ref(),
        }
    }
}

/// Every resource's router, merged in this one place.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    [
        health::router(),
        metrics::router(),
        auth::router(),
        workspaces::router(),
        members::router(),
        api_keys::router(),
        connections::router(),
        oauth::router(),
        ad_accounts::router(),
        campaigns::router(),
        syncs::router(),
        insights::router(),
        as_reported::router(),
        events::router(),
        streams::router(),
        audit::router(),
        log::router(),
        OpenApiRouter::new().routes(routes!(openapi::openapi_json)),
    ]
    .into_iter()
    .fold(
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()),
        OpenApiRouter::merge,
    )
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> &'static serde_json::Value {
    openapi::document()
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let policy = state.http.clone();
    let (router, _) = api_router().split_for_parts();
    let router = router
        .fallback(error::not_found_fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            consistency::track_writes,
        ))
        .with_state(state);
    hardening::apply(router, &policy)
        .layer(TraceLayer::new_for_http().make_span_with(context::request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
