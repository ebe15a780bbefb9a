//! The signals of a long-running command (`proxy`, `serve`): SIGTERM or Ctrl-C stops it,
//! SIGHUP asks it to reload (what a reload is belongs to the command).

use std::future::Future;

/// Returns once SIGTERM or Ctrl-C arrives, running `on_hup` for each SIGHUP meanwhile. Where
/// the Unix handlers cannot be installed (or off Unix), Ctrl-C alone stops it.
pub async fn until_stopped<F, Fut>(mut on_hup: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => on_hup().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = &mut on_hup;
        let _ = tokio::signal::ctrl_c().await;
    }
}
