//! Telling a run to stop before its end, and why: its worker is shutting down (the run is handed
//! back so another worker carries it on at once), or its worker lost the run's lease (another
//! worker holds it: this one must stop writing). A run looks at it between chunks and while it
//! waits on a platform.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Shutdown,
    LeaseLost,
}

/// The run's side: asks whether to stop.
#[derive(Clone)]
pub struct Interrupt(watch::Receiver<Option<StopReason>>);

/// The worker's side: tells the run to stop.
#[derive(Clone)]
pub struct Interrupter(watch::Sender<Option<StopReason>>);

pub fn channel() -> (Interrupter, Interrupt) {
    let (tx, rx) = watch::channel(None);
    (Interrupter(tx), Interrupt(rx))
}

impl Interrupter {
    /// The first reason given is the one the run sees.
    pub fn stop(&self, reason: StopReason) {
        self.0.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        });
    }
}

impl Interrupt {
    pub fn reason(&self) -> Option<StopReason> {
        *self.0.borrow()
    }

    /// Resolves once the run is told to stop (never, once every interrupter is gone).
    pub async fn stopped(&mut self) -> StopReason {
        loop {
            if let Some(reason) = *self.0.borrow_and_update() {
                return reason;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins() {
        let (stop, mut interrupt) = channel();
        assert_eq!(interrupt.reason(), None);
        stop.stop(StopReason::LeaseLost);
        stop.stop(StopReason::Shutdown);
        assert_eq!(interrupt.stopped().await, StopReason::LeaseLost);
        assert_eq!(interrupt.reason(), Some(StopReason::LeaseLost));
    }
}
