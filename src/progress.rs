//! Progress of long CLI work (rebuild, replay, verify, audit export): one bar style with rate
//! and ETA, drawn on stderr only when it is a terminal, so pipes and logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A bar over `total` events (the log's head, or the part of it the work covers) that says what
/// it does (`"rebuilding daily_insights"`). Hidden when stderr is not a terminal.
pub fn events(total: u64, doing: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // Template keys are fixed at compile time; a bad one would be a bug in this file.
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(doing.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_what_it_is_told() {
        let bar = super::events(10, "testing");
        bar.inc(4);
        assert_eq!(bar.position(), 4);
        assert_eq!(bar.length(), Some(10));
        bar.finish_and_clear();
    }
}
