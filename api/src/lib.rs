//! The REST API: axum routers (one module per resource, owning its request and response types),
//! extractors that authorize (`access`) and turn bad input into problem+json (`extract`), the
//! single error type, and the OpenAPI document generated from the handlers. Handlers are thin:
//! extract and validate, call a command or a query, map to a response.

mod access;
mod ad_accounts;
mod api_keys;
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
    /// `/readyz` answers 503 when a projection lags the log by more than this many events.
    pub ready_max_lag: i64,
    pub readiness: Readiness,
    pub http: HttpPolicy,
    /// What each caller's next reads must see of their writes (read-your-writes).
    pub consistency: std::sync::Arc<Consistency>,
}

/// What `/readyz` checks besides the database and migrations.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// The relay's topic, when this deployment publishes to Kafka: its lag counts too.
    pub relay_topic: Option<String>,
    /// Projections are fed from this Kafka topic: their lag is counted in messages on it (their
    /// Postgres-log checkpoints do not move).
    pub projections_from_kafka: Option<adledger_infra::kafka::KafkaConfig>,
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
fn api_router() -> OpenApiRouter<AppState> {
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
        events::router(),
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

/// The routes and the OpenAPI document that describes them, completed with what every read
/// route shares.
fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::Modify;
    let (router, mut doc) = api_router().split_for_parts();
    consistency::ReadYourWrites.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> &'static serde_json::Value {
    openapi::document()
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let policy = state.http.clone();
    let (router, _) = routes_and_document();
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
