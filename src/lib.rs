//! The `adledger` binary's wiring: the command line, start-up of each role (API, projection
//! workers, sequencer), and the ops commands (demo, replay, verify, bench).

pub mod audit;
pub mod bench;
pub mod bench_proofs;
pub mod cli;
pub mod demo;
pub mod ops;
pub mod progress;
pub mod proofs;
pub mod rebuilds;
pub mod replay;
pub mod startup;
