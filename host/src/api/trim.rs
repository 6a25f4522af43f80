//! Giving memory back after a burst of work. glibc's malloc keeps the pages
//! that a burst freed (64 concurrent requests parse, copy and answer their
//! bodies on many threads, each with its own arena): a server measured
//! 34 → 72 MiB after such a burst, 46 MiB after one `malloc_trim(0)`.
//!
//! Invariants:
//! - One trim per quiet spell: when [`Metrics::activity`] did not change for
//!   a whole [`QUIET`] after it had changed since the last trim. A busy
//!   server is never trimmed in the middle of its work, an idle one not
//!   again and again.
//! - The trim runs on a blocking thread (it walks every arena).
//! - Only on glibc; elsewhere this does nothing.

use std::sync::Arc;
use std::time::Duration;

use super::metrics::Metrics;

/// How long the server must be quiet before it trims.
pub const QUIET: Duration = Duration::from_secs(1);

/// Watch `metrics` and trim after each burst, for the server's lifetime.
pub fn spawn(metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = metrics.activity();
        let mut trimmed = seen;
        let mut tick = tokio::time::interval(QUIET);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = metrics.activity();
            if now == seen && now != trimmed {
                trimmed = now;
                let _ = tokio::task::spawn_blocking(crate::trim::release).await;
            }
            seen = now;
        }
    })
}
