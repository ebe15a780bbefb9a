//! The proxy's counters, for `/metrics` (Prometheus text) and the `metrics` facade.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($field:ident => $name:literal, $help:literal;)*) => {
        /// Counters since the proxy started.
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub(crate) $field: AtomicU64,)*
            /// Client connections open now (a gauge).
            pub(crate) open_connections: AtomicU64,
        }

        /// A copy of the counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $(
                #[doc = $help]
                pub $field: u64,
            )*
            /// Client connections open now.
            pub open_connections: u64,
        }

        impl Stats {
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                    open_connections: self.open_connections.load(Ordering::Relaxed),
                }
            }

            pub(crate) fn prometheus(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP {} {}", $name, $help);
                    let _ = writeln!(out, "# TYPE {} counter", $name);
                    let _ = writeln!(out, "{} {}", $name, self.$field.load(Ordering::Relaxed));
                )*
                let _ = writeln!(out, "# HELP sfkeep_proxy_open_connections Client connections open now.");
                let _ = writeln!(out, "# TYPE sfkeep_proxy_open_connections gauge");
                let _ = writeln!(out, "sfkeep_proxy_open_connections {}", self.open_connections.load(Ordering::Relaxed));
                out
            }
        }

        /// Names of the counters, for `inc`.
        #[derive(Clone, Copy, Debug)]
        #[allow(non_camel_case_types)]
        pub(crate) enum Counter { $($field,)* }

        impl Stats {
            pub(crate) fn inc(&self, c: Counter) {
                match c {
                    $(Counter::$field => {
                        self.$field.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!($name).increment(1);
                    })*
                }
            }
        }
    };
}

counters! {
    requests => "sfkeep_proxy_requests_total", "Requests received.";
    forwarded => "sfkeep_proxy_forwarded_total", "Requests forwarded to the instance (replays included).";
    replays => "sfkeep_proxy_replays_total", "Requests replayed once with a new token after a session death.";
    passthrough_401 => "sfkeep_proxy_session_death_passthrough_total", "Session deaths passed to the client (streamed body, or dead again after the replay).";
    upstream_errors => "sfkeep_proxy_upstream_errors_total", "Requests that failed to reach the instance or could not get a token.";
    rejected => "sfkeep_proxy_rejected_total", "Requests refused by the proxy (open-proxy attempts, bad input, limits).";
    unauthorized => "sfkeep_proxy_unauthorized_total", "Requests without a valid client key or proxy-local credential.";
    local_logins => "sfkeep_proxy_local_logins_total", "SOAP logins and OAuth token requests answered by the shim.";
    reloads => "sfkeep_proxy_reloads_total", "Forced refreshes through /_sfkeep/reload.";
    browser_refused => "sfkeep_proxy_browser_refused_total", "Requests refused because a web browser made them for a page (Origin, Sec-Fetch-Site, OPTIONS).";
    connections => "sfkeep_proxy_connections_total", "Client connections accepted.";
    connections_refused => "sfkeep_proxy_connections_refused_total", "Client connections refused at the connection cap (a 503 on plain HTTP; a close before the handshake on TLS).";
    tls_handshake_failures => "sfkeep_proxy_tls_handshake_failures_total", "TLS handshakes that failed or did not end in time (a client that does not trust the proxy's CA ends here).";
}
