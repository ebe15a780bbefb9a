//! Human output: colour only when stdout (or stderr) is a terminal and `NO_COLOR` is unset,
//! with plain ANSI codes; a spinner on stderr for waits over a second, on a terminal only.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether stdout gets colour.
pub fn colour_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// A style: wraps text in ANSI codes when `on`.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colour for stdout.
    pub fn stdout() -> Self {
        Self {
            on: colour_stdout(),
        }
    }

    fn wrap(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Bold.
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    /// Red (failure).
    pub fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
    /// Green (success).
    pub fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    /// Yellow (warning).
    pub fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Dim (secondary).
    pub fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// A spinner on stderr that appears only after a second, and only on a terminal. Dropping it
/// stops it and clears its line.
#[allow(dead_code)]
pub struct Spinner {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

#[allow(dead_code)]
impl Spinner {
    /// Starts a spinner labelled `what`.
    pub fn start(what: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, handle: None };
        }
        let what = what.to_owned();
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            use std::io::Write;
            let frames = ['|', '/', '-', '\\'];
            let mut waited = Duration::ZERO;
            let tick = Duration::from_millis(100);
            let mut shown = false;
            let mut i = 0;
            while !s.load(Ordering::Acquire) {
                std::thread::park_timeout(tick);
                waited += tick;
                if waited >= Duration::from_secs(1) && !s.load(Ordering::Acquire) {
                    shown = true;
                    let _ = write!(std::io::stderr(), "\r{} {what}", frames[i % 4]);
                    let _ = std::io::stderr().flush();
                    i += 1;
                }
            }
            if shown {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
                let _ = std::io::stderr().flush();
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
