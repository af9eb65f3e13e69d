//! What lets anyone check the log without trusting this server: the signed checkpoint of the
//! Merkle tree's current head, the keys that sign checkpoints, and inclusion and consistency
//! proofs (hashes only, base64). The checkpoint and keys are public; proofs need any credential
//! (they reveal no event content, but cost queries). Nothing here reads an event's content.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::responses::{Internal, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_infra::merkle::{self, Hash};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(checkpoint_keys))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
}

fn b64(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn no_checkpoints() -> ApiError {
    ApiError::NotFound("checkpoints (this deployment has no checkpoint signing key)".into())
}

/// The signed checkpoint (C2SP tlog-checkpoint in a signed note) of the log's current tree
/// head. One checkpoint is signed per tree size and kept: asking again returns the same note
/// until the log grows. Verify it with the keys at `/.well-known/adledger/checkpoint-keys`.
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "proofs", security(()),
    responses((status = 200, description = "The signed note: origin, tree size, base64 root, then signature lines", content_type = "text/plain", body = String),
              NotFound, RateLimited, Internal))]
async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let signer = state.checkpoints.as_deref().ok_or_else(no_checkpoints)?;
    let issued = state.store.checkpoint(signer).await?;
    Ok(text(issued.note))
}

/// The verifier keys of checkpoints (`<name>+<hex key id>+<base64 key>`, one a line): the key
/// that signs now first, then older ones still published so that earlier checkpoints verify.
#[utoipa::path(get, path = "/.well-known/adledger/checkpoint-keys", tag = "proofs", security(()),
    responses((status = 200, description = "One verifier key a line", content_type = "text/plain", body = String),
              NotFound, RateLimited))]
async fn checkpoint_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let signer = state.checkpoints.as_deref().ok_or_else(no_checkpoints)?;
    let mut body = signer.keys().verifier_keys().join("\n");
    body.push('\n');
    Ok(text(body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionParams {
    /// The event's log position (leaf `position - 1`).
    #[param(minimum = 1)]
    position: i64,
    /// The size of the tree to prove it in (a checkpoint's size), at least `position` and at
    /// most the current tree's.
    #[param(minimum = 1)]
    tree_size: i64,
}

/// An inclusion proof (RFC 9162 §2.1.3): `leaf_hash = SHA-256(0x00 ‖ chain_hash)`, folded with
/// `hashes` from leaf `leaf_index` up, gives `root`, the head of the tree of `tree_size` leaves.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    pub position: i64,
    pub leaf_index: i64,
    pub tree_size: i64,
    /// The event's chain hash, the leaf's input (base64).
    pub chain_hash: String,
    pub leaf_hash: String,
    /// The head of the tree of `tree_size` leaves (base64), as its checkpoint states it.
    pub root: String,
    /// The audit path, from the leaf's sibling up (base64).
    pub hashes: Vec<String>,
}

/// The current tree's size, or a 422 naming `field` when `size` is beyond it.
async fn within_tree(state: &AppState, field: &str, size: i64) -> Result<u64, ApiError> {
    let current = state.reads.tree_head().await?.size;
    match u64::try_from(size) {
        Ok(size) if size <= current => Ok(size),
        _ => Err(ApiError::invalid(
            field,
            format!("must be at most the tree's current size, {current}"),
        )),
    }
}

/// The proof that the event at `position` is in the tree of `tree_size` leaves.
#[utoipa::path(get, path = "/v1/log/proofs/inclusion", tag = "proofs",
    params(InclusionParams),
    responses((status = 200, body = InclusionProof), Unauthenticated, Invalid, RateLimited, Internal))]
async fn inclusion(
    State(state): State<AppState>,
    _: Caller,
    ApiQuery(params): ApiQuery<InclusionParams>,
) -> Result<Json<InclusionProof>, ApiError> {
    if params.position < 1 {
        return Err(ApiError::invalid("position", "must be at least 1"));
    }
    if params.tree_size < params.position {
        return Err(ApiError::invalid("tree_size", "must be at least position"));
    }
    let size = within_tree(&state, "tree_size", params.tree_size).await?;
    let position = params.position as u64;
    let missing = || ApiError::Internal(format!("the tree of {size} lacks position {position}"));
    let proof = state
        .reads
        .inclusion_proof(position, size)
        .await?
        .ok_or_else(missing)?;
    let chain = state
        .reads
        .chain_hash_at(position)
        .await?
        .ok_or_else(missing)?;
    let head = state.reads.tree_head_at(size).await?.ok_or_else(missing)?;
    Ok(Json(InclusionProof {
        position: params.position,
        leaf_index: params.position - 1,
        tree_size: params.tree_size,
        chain_hash: b64(&chain),
        leaf_hash: b64(&merkle::leaf_hash(&chain)),
        root: b64(&head.root),
        hashes: proof.iter().map(b64).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// The older tree's size (a checkpoint's size; 0 for the empty tree).
    #[param(minimum = 0)]
    from: i64,
    /// The newer tree's size, at least `from` and at most the current tree's.
    #[param(minimum = 0)]
    to: i64,
}

/// A consistency proof (RFC 9162 §2.1.4): the tree of `from` leaves, head `from_root`, is a
/// prefix of the tree of `to` leaves, head `to_root`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: i64,
    pub to: i64,
    pub from_root: String,
    pub to_root: String,
    /// The proof's hashes (base64), as RFC 9162 orders them.
    pub hashes: Vec<String>,
}

/// The proof that the tree of `from` leaves is a prefix of the tree of `to` leaves.
#[utoipa::path(get, path = "/v1/log/proofs/consistency", tag = "proofs",
    params(ConsistencyParams),
    responses((status = 200, body = ConsistencyProof), Unauthenticated, Invalid, RateLimited, Internal))]
async fn consistency(
    State(state): State<AppState>,
    _: Caller,
    ApiQuery(params): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    if params.from < 0 {
        return Err(ApiError::invalid("from", "must be at least 0"));
    }
    if params.to < params.from {
        return Err(ApiError::invalid("to", "must be at least from"));
    }
    let to = within_tree(&state, "to", params.to).await?;
    let from = params.from as u64;
    let missing = || ApiError::Internal(format!("the tree of {to} leaves is incomplete"));
    let proof = state
        .reads
        .consistency_proof(from, to)
        .await?
        .ok_or_else(missing)?;
    let old = state.reads.tree_head_at(from).await?.ok_or_else(missing)?;
    let new = state.reads.tree_head_at(to).await?.ok_or_else(missing)?;
    Ok(Json(ConsistencyProof {
        from: params.from,
        to: params.to,
        from_root: b64(&old.root),
        to_root: b64(&new.root),
        hashes: proof.iter().map(b64).collect(),
    }))
}
