//! Structured logging: `tracing` events with fields, as text for people or JSON for machines.
//! The level comes from `RUST_LOG` (default `info`); request ids and stream ids are fields.
//! Colours only where a person reads them: text on a terminal, never JSON, never `NO_COLOR`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(colours(std::io::stderr().is_terminal()))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .try_init(),
    };
}

/// Whether text logs to a terminal (or not) carry ANSI colours; `NO_COLOR` (no-color.org)
/// turns them off everywhere.
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
