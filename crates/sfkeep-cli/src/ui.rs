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

/// A spinner on stderr (indicatif) that appears only after a second, and only on a terminal.
/// Dropping it stops it and clears its line.
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
            // Nothing shows for a wait under a second.
            std::thread::park_timeout(Duration::from_secs(1));
            if s.load(Ordering::Acquire) {
                return;
            }
            let bar = indicatif::ProgressBar::new_spinner().with_message(what);
            bar.enable_steady_tick(Duration::from_millis(100));
            while !s.load(Ordering::Acquire) {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            bar.finish_and_clear();
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

/// Progress on stderr: an indicatif bar on a terminal (drawn at most 10 times a second),
/// plain lines otherwise (one per update, no control characters).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar on a terminal, plain lines elsewhere.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("  {bar:30} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self { bar }
    }

    /// Shows `done` of `total` (if known) with `line` beside the bar, or prints `line`.
    pub fn update(&self, done: u64, total: Option<u64>, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(line.to_owned());
                match total {
                    Some(t) => bar.set_length(t.max(done)),
                    None => bar.set_length(done.max(1)),
                }
                bar.set_position(done);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Starts a new phase: the terminal keeps the finished bar's last line.
    pub fn next_phase(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
            // The finished bar's line stays; what follows starts below it.
            eprintln!();
            *self = Self::new();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
            eprintln!();
        }
    }
}
