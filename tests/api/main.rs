//! Black-box API tests: the real application on port 0, a fresh database per test, plain HTTP.

mod helpers;
#[path = "../support/mod.rs"]
mod support;

mod access;
mod as_reported;
mod audit;
mod auth;
mod consistency;
mod erasure;
mod erasure_reach;
mod event_filters;
mod events;
mod hardening;
mod health;
mod idempotency;
mod inputs;
mod insights;
mod openapi;
mod operators;
mod outage;
mod paging;
mod platforms;
mod streams;
mod syncs;
mod timeouts;
mod workspaces;
