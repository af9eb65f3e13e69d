//! Faults an operator meets, kept in the suite: `adledger serve` SIGKILLed in the middle of a
//! large sync and in the middle of projection catch-up, PostgreSQL restarted under a steady
//! stream of idempotent writes, and a backup dumped and restored into a fresh cluster. After
//! each, every acknowledged write is in the log exactly once, the hash chain verifies, every
//! read model equals a rebuild from the log, and no sync is left running.

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod database_restart;
mod harness;
mod kills;
