//! The OpenAPI document: what the handlers' annotations say, completed with what every operation
//! of a kind answers because of the layers and extractors it passes through (401 with
//! `WWW-Authenticate` behind a bearer credential; 400, 413 and 422 for a JSON body; 422 for a
//! query or an `Idempotency-Key`; 404 for an id in the path; 429 where rate limits apply; 503
//! everywhere but `/healthz`; and the reads' `min_position` with the writes' position header
//! (`crate::consistency::ReadYourWrites`)), so that no route can forget them. Built once, served
//! at `/openapi.json`; it never changes while the server runs.

use crate::error::{FieldError, Problem};
use std::sync::OnceLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "adledger",
        description = "Event-sourced advertising data: workspaces, connections, campaigns, \
                       daily insights, and the immutable event log.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub(crate) struct ApiDoc;

/// Every route but the public ones (`security: []`) wants a bearer credential: an access token
/// from `/v1/auth/login` or an API key.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token (JWT) from /v1/auth/login, or an API key (adl_ak_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The completed document.
fn typed() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        use utoipa::Modify;
        let mut doc = crate::api_router().split_for_parts().1;
        // First: the reads' `min_position` is a query parameter, which implies a 422 below.
        crate::consistency::ReadYourWrites.modify(&mut doc);
        complete(&mut doc);
        doc
    })
}

/// The document, as served at `/openapi.json`.
pub fn document() -> &'static serde_json::Value {
    static JSON: OnceLock<serde_json::Value> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(typed()).unwrap_or_default();
        camel_case_links(&mut json);
        json
    })
}

/// utoipa 5 writes a Link Object's fields in snake case (`operation_id`); OpenAPI (and every
/// client that follows links) reads `operationId`, `operationRef` and `requestBody`.
fn camel_case_links(json: &mut serde_json::Value) {
    let Some(paths) = json.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_owned(), value);
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> axum::Json<&'static serde_json::Value> {
    axum::Json(document())
}

/// Adds to each operation the answers its shape implies (see the module's comment). Answers an
/// annotation gives itself are kept: they say more (e.g. login's 401 is about wrong passwords).
fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            public_means_no_security(operation);
            let answers = implied_answers(path, operation);
            for (status, description) in answers {
                let declared = operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem(description)));
                // A route's own 503 (the reads' `not-caught-up`) gets every route's cases
                // besides, unless it names them already (`/readyz`).
                if let (503, RefOr::T(declared)) = (status, declared) {
                    if !declared.description.contains("database-unavailable") {
                        declared.description =
                            format!("{} Also {UNAVAILABLE}", declared.description);
                    }
                }
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response {
                    headers_of(status, response);
                }
            }
        }
    }
}

/// A handler marks its route public with `security(())`, which utoipa writes as the empty
/// requirement `[{}]` ("a credential is optional"). A public route takes no credential at all:
/// `security: []`, which overrides the document's default bearer requirement.
fn public_means_no_security(operation: &mut Operation) {
    if let Some(requirements) = &operation.security {
        let empty = serde_json::json!({});
        if requirements
            .iter()
            .all(|r| serde_json::to_value(r).ok().as_ref() == Some(&empty))
        {
            operation.security = Some(Vec::new());
        }
    }
}

/// Whether the operation wants a bearer credential: unless it says otherwise, the document's
/// default does.
pub(crate) fn needs_bearer(operation: &Operation) -> bool {
    operation.security.as_ref().is_none_or(|r| !r.is_empty())
}

fn implied_answers(path: &str, operation: &Operation) -> Vec<(u16, &'static str)> {
    let mut answers = Vec::new();
    if needs_bearer(operation) {
        answers.push((
            401,
            "`unauthenticated`: no credential, or a wrong, expired or revoked one",
        ));
    }
    let params = operation.parameters.as_deref().unwrap_or_default();
    if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        answers.push((
            404,
            "`not-found`: nothing by this id here (or a malformed id), or a workspace the \
             caller does not reach",
        ));
    }
    let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let has_key = params
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Header && p.name == "Idempotency-Key");
    if operation.request_body.is_some() {
        answers.push((
            400,
            "`malformed-request`: the body is not JSON, or not sent as `application/json`",
        ));
        answers.push((
            413,
            "`payload-too-large`: the body is over the server's limit",
        ));
    }
    if operation.request_body.is_some() || has_query || has_key {
        answers.push((
            422,
            "`validation-failed` (`errors[]` names each field) or `idempotency-key-reused`",
        ));
    }
    if !crate::rate_limit::EXEMPT.contains(&path) {
        answers.push((
            429,
            "`rate-limited`: over a rate limit; `Retry-After` says when to retry",
        ));
    }
    // Every route runs under the request time limit, and all but `/healthz` reach the database.
    if path != "/healthz" {
        answers.push((503, UNAVAILABLE));
    }
    answers
}

/// The 503 cases every route but `/healthz` can answer.
const UNAVAILABLE: &str = "`database-unavailable`: the database did not answer in time (down, \
                           restarting, or every connection busy); or `request-timeout`: the \
                           request took longer than the server's limit. `Retry-After` says when \
                           to retry.";

/// A problem answer.
pub(crate) fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The headers an answer of this status carries: every 401 names the scheme to authenticate
/// with, every 429 and 503 says when to retry.
fn headers_of(status: &str, response: &mut Response) {
    let (name, description) = match status {
        "401" => (
            "WWW-Authenticate",
            "`Bearer realm=\"adledger\"`: the scheme to authenticate with",
        ),
        "429" => ("Retry-After", "Seconds until a retry may succeed"),
        "503" => ("Retry-After", "Seconds to wait before retrying"),
        _ => return,
    };
    let schema: Object = match status {
        "429" | "503" => Object::with_type(Type::Integer),
        _ => Object::with_type(Type::String),
    };
    response.headers.entry(name.to_owned()).or_insert_with(|| {
        HeaderBuilder::new()
            .schema(schema)
            .description(Some(description))
            .build()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::PathItem;

    fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
        [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("patch", &item.patch),
        ]
        .into_iter()
        .filter_map(|(m, o)| o.as_ref().map(|o| (m, o)))
    }

    fn every_operation() -> Vec<(String, &'static Operation)> {
        typed()
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                operations(item).map(move |(method, op)| (format!("{method} {path}"), op))
            })
            .collect()
    }

    fn statuses(op: &Operation) -> Vec<&str> {
        op.responses.responses.keys().map(String::as_str).collect()
    }

    /// The routes anyone may call: the rest want a credential.
    const PUBLIC: &[&str] = &[
        "get /healthz",
        "get /readyz",
        "get /metrics",
        "get /openapi.json",
        "post /v1/auth/register",
        "post /v1/auth/login",
        "post /v1/auth/refresh",
        "get /v1/oauth/{platform}/callback",
        "get /v1/log/checkpoint",
        "get /.well-known/adledger/checkpoint-keys",
    ];

    #[test]
    fn public_routes_take_no_credential_and_every_other_wants_a_bearer_one() {
        for (name, op) in every_operation() {
            if PUBLIC.contains(&name.as_str()) {
                assert_eq!(
                    op.security.as_deref().map(<[_]>::len),
                    Some(0),
                    "{name} is public: `security: []`"
                );
            } else {
                assert!(needs_bearer(op), "{name} wants a bearer credential");
            }
        }
        let json = document();
        assert_eq!(json["security"], serde_json::json!([{"bearer": []}]));
        assert_eq!(
            json["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([])
        );
    }

    #[test]
    fn every_operation_behind_a_credential_answers_401_with_www_authenticate() {
        for (name, op) in every_operation() {
            if !needs_bearer(op) {
                continue;
            }
            let Some(RefOr::T(unauthorized)) = op.responses.responses.get("401") else {
                panic!("{name} lists no 401");
            };
            assert!(
                unauthorized.headers.contains_key("WWW-Authenticate"),
                "{name}: its 401 names no WWW-Authenticate"
            );
        }
    }

    #[test]
    fn every_error_answer_is_a_problem() {
        for (name, op) in every_operation() {
            for (status, response) in &op.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response.content.contains_key("application/problem+json"),
                        "{name} {status} is not problem+json"
                    );
                }
            }
        }
    }

    #[test]
    fn bodies_queries_and_paths_list_the_answers_their_extractors_give() {
        for (name, op) in every_operation() {
            let answers = statuses(op);
            assert_eq!(
                answers.contains(&"503"),
                name != "get /healthz",
                "{name}: 503"
            );
            if op.request_body.is_some() {
                for status in ["400", "413", "422"] {
                    assert!(answers.contains(&status), "{name} lists no {status}");
                }
            }
            let params = op.parameters.as_deref().unwrap_or_default();
            if params.iter().any(|p| p.parameter_in == ParameterIn::Query) {
                assert!(answers.contains(&"422"), "{name} lists no 422");
            }
            if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
                assert!(answers.contains(&"404"), "{name} lists no 404");
            }
            let limited = !["get /healthz", "get /readyz", "get /metrics"].contains(&name.as_str());
            assert_eq!(answers.contains(&"429"), limited, "{name}: 429");
        }
    }

    #[test]
    fn writes_that_take_an_idempotency_key_say_what_a_key_is() {
        let mut keyed = Vec::new();
        for (name, op) in every_operation() {
            for p in op.parameters.as_deref().unwrap_or_default() {
                if p.name != "Idempotency-Key" {
                    continue;
                }
                keyed.push(name.clone());
                let schema = serde_json::to_value(&p.schema).unwrap();
                assert_eq!(schema["maxLength"], 255, "{name}");
                assert_eq!(schema["minLength"], 1, "{name}");
                assert_eq!(schema["pattern"], "^[!-~](?:[ -~]{0,253}[!-~])?$", "{name}");
            }
        }
        keyed.sort();
        assert_eq!(
            keyed,
            [
                "post /v1/workspaces",
                "post /v1/workspaces/{workspace_id}/connections",
                "post /v1/workspaces/{workspace_id}/connections/{connection_id}/syncs",
            ]
        );
    }

    #[test]
    fn closed_sets_of_names_are_enums() {
        let json = document();
        let schemas = &json["components"]["schemas"];
        let roles = serde_json::json!(["owner", "admin", "analyst", "auditor"]);
        assert_eq!(schemas["ChangeRole"]["properties"]["role"]["enum"], roles);
        assert_eq!(schemas["Invite"]["properties"]["role"]["enum"], roles);
        assert_eq!(
            schemas["CreateApiKey"]["properties"]["scope"]["enum"],
            serde_json::json!(["read_only", "read_write"])
        );
        assert!(schemas["ConnectPlatform"]["properties"]["platform"]["enum"]
            .as_array()
            .is_some_and(|p| p.contains(&"sandbox".into())));
        let insights = &json["paths"]["/v1/workspaces/{workspace_id}/insights"]["get"];
        let granularity = insights["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "granularity")
            .unwrap();
        assert_eq!(
            granularity["schema"]["enum"],
            serde_json::json!(["day", "week", "month", "total"])
        );
    }

    #[test]
    fn creations_link_to_what_they_created() {
        let json = document();
        let links = &json["paths"]["/v1/workspaces"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["GetWorkspace"]["operationId"], "get_workspace");
        assert_eq!(
            links["GetWorkspace"]["parameters"]["workspace_id"],
            "$response.body#/id"
        );
        let operation_ids: Vec<String> = every_operation()
            .into_iter()
            .filter_map(|(_, op)| op.operation_id.clone())
            .collect();
        // Every link names an operation that exists, and each of its parameters is one of it.
        let mut count = 0;
        for item in json["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().into_iter().flatten() {
                    for (name, link) in response.1["links"].as_object().into_iter().flatten() {
                        count += 1;
                        let target = link["operationId"].as_str().unwrap_or_default();
                        assert!(
                            operation_ids.iter().any(|id| id == target),
                            "link {name} names no operation: {link}"
                        );
                        assert!(link.get("operation_id").is_none(), "{link}");
                    }
                }
            }
        }
        assert!(count >= 8, "{count} links");
    }
}
