//! The status listener: `/healthz`, `/metrics`, `/api/v1/status`, `/api/v1/events` and the
//! status page at `/` (with its script and style). Read-only; every answer is `no-store`; what
//! it shows never holds a token (fingerprints only) — the leak-audit test checks it by value.
//!
//! `/api/v1/events?profile=NAME&window=24h|7d|30d` gives the profile's audit-log events in the
//! window (each with the category the page draws it as), counted per bucket on the server, the
//! integration user's `LoginHistory` rows from the last org read (or why there are none), the
//! alerts sent, the API usage samples and the named patterns. Each death (a 401, a re-auth
//! required) carries its `death_cause` (`super::death_causes`), and `death_causes` counts them
//! per cause for the page's legend. Past [`MAX_MARKS`] events only
//! the buckets are sent, so the page stays responsive with 100,000 events in the window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use sfkeep::clock::{Clock, SystemClock};
use sfkeep_proxy::{BrowserGuard, ClientKey};

use super::access;
use super::guardian::Guardian;
use super::page;
use crate::audit::{AuditLog, EventRow};
use crate::session;

/// Events sent one by one up to this many in a window; beyond, buckets only.
pub const MAX_MARKS: u64 = 2_000;
/// Buckets per window.
const BUCKETS: i64 = 96;

#[derive(Clone)]
struct App {
    guardian: Arc<Guardian>,
    key: Option<Arc<ClientKey>>,
    browser_guard: Arc<BrowserGuard>,
}

/// The router, guarded by [`access::check`].
pub fn router(guardian: Arc<Guardian>, key: Option<String>) -> axum::Router {
    let app = App {
        guardian,
        key: key.map(|k| Arc::new(ClientKey::new(k))),
        browser_guard: Arc::new(BrowserGuard::new()),
    };
    axum::Router::new()
        .route("/", get(index))
        .route("/page.js", get(script))
        .route("/page.css", get(style))
        .route("/icon.svg", get(icon))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Err(r) = access::check(&req, &app.browser_guard, app.key.as_deref()) {
        let (status, reason) = r.status_and_reason();
        let mut resp = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            format!("{reason}\n"),
        )
            .into_response();
        if r == access::Refusal::Key {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sfkeep serve\""),
            );
        }
        if r == access::Refusal::Method {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        return no_store(resp);
    }
    no_store(next.run(req).await)
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn json_response(v: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "sfkeep serve answers /, /healthz, /metrics, /api/v1/status and /api/v1/events\n",
    )
        .into_response()
}

async fn index() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page::HTML,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::CSP),
    );
    r
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        page::STYLE,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], page::ICON).into_response()
}

/// Ok only when every watched profile is: its token manager, its store and the org (the
/// guardian's last time probe) all answer (`sfkeep_proxy::health`); else 503 with the reasons.
async fn healthz(State(app): State<App>) -> Response {
    let g = &app.guardian;
    let mut profiles = BTreeMap::new();
    let mut problems = Vec::new();
    for w in &g.watches {
        let v = g.view(w);
        profiles.insert(w.name.clone(), v["state"].clone());
        let org = sfkeep::sync::lock(&w.state).org_reachable.clone().err();
        let h = sfkeep_proxy::health::check(&w.manager, Some(w.store().as_ref()), org).await;
        for p in h.body["problems"].as_array().into_iter().flatten() {
            let mut p = p.clone();
            p["profile"] = json!(w.name);
            problems.push(p);
        }
    }
    let ok = problems.is_empty();
    let body = json!({
        "status": if ok { "ok" } else { "unhealthy" },
        "profiles": profiles,
        "problems": problems,
    });
    let mut r = json_response(&body);
    if !ok {
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    r
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(&app.guardian),
    )
        .into_response()
}

/// The whole status document.
pub fn status_doc(g: &Guardian) -> Value {
    let settings = g.settings();
    let alerts = sfkeep::sync::lock(&g.alerts).clone();
    json!({
        "sfkeep": {"version": env!("CARGO_PKG_VERSION"), "started_at": g.started_at, "now": SystemClock.now()},
        "settings": {
            "check_interval_secs": settings.check_interval.as_secs_f64(),
            "org_check_interval_secs": settings.org_check_interval.as_secs(),
            "forecast_thresholds_secs": settings.forecast_thresholds.iter().map(Duration::as_secs).collect::<Vec<_>>(),
            "api_usage_thresholds_percent": settings.api_usage_thresholds,
        },
        "profiles": g.watches.iter().map(|w| g.view(w)).collect::<Vec<_>>(),
        "webhooks": sfkeep::sync::lock(&g.webhooks).stats(),
        "alerts": alerts.iter().rev().take(100).collect::<Vec<_>>(),
    })
}

async fn status(State(app): State<App>) -> Response {
    json_response(&status_doc(&app.guardian))
}

#[derive(Deserialize)]
struct EventsQuery {
    profile: Option<String>,
    window: Option<String>,
}

/// The page's category for an event, given the one before it.
pub fn category(r: &EventRow, previous: Option<&EventRow>) -> &'static str {
    let api = |e: &EventRow| {
        e.event
            .get("api")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if r.is_doctor_probe() {
        return "probe";
    }
    match r.kind.as_str() {
        crate::audit::PROBE_KIND => "probe",
        "token.invalidated" if api(r).as_deref() == Some("keep_alive") => "keep_alive",
        "token.invalidated" => "death",
        "token.refreshed" => match previous {
            Some(p) if p.kind == "token.invalidated" && api(p).as_deref() == Some("keep_alive") => {
                "keep_alive"
            }
            // The event's JSON spells the reason as serde does (`reactive401`); `RefreshReason::as_str`
            // as `reactive_401`.
            _ if matches!(
                r.event.get("reason").and_then(Value::as_str),
                Some("reactive401" | "reactive_401")
            ) =>
            {
                "heal"
            }
            _ => "refresh",
        },
        "reauth.required" => "reauth",
        "refresh.failed" => "failure",
        "fallback.used" => "fallback",
        "token.adopted" | "token.written_back" => "adopted",
        "api.succeeded" => "api",
        k if k.starts_with("store.") => "store",
        _ => "other",
    }
}

fn label(r: &EventRow) -> String {
    let mut s = r.kind.clone();
    if let Some(c) = &r.cause {
        s.push_str(&format!(" ({c})"));
    }
    for k in ["reason", "api"] {
        if let Some(v) = r.event.get(k).and_then(Value::as_str) {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if let Some(g) = r.generation {
        s.push_str(&format!(" gen {g}"));
    }
    s
}

async fn events(State(app): State<App>, Query(q): Query<EventsQuery>) -> Response {
    let g = &app.guardian;
    let w = match &q.profile {
        Some(name) => g.watches.iter().find(|w| &w.name == name),
        None => g.watches.first(),
    };
    let Some(w) = w else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "no such profile"}).to_string(),
        )
            .into_response();
    };
    let window_name = q.window.unwrap_or_else(|| "24h".to_owned());
    let window = match window_name.as_str() {
        "24h" | "7d" | "30d" => {
            super::settings::parse_duration(&window_name).unwrap_or(Duration::from_secs(86_400))
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"error": "window is one of 24h, 7d, 30d"}).to_string(),
            )
                .into_response();
        }
    };
    json_response(&events_doc(g, w, &window_name, window))
}

/// The `/api/v1/events` document of one watch.
pub fn events_doc(
    g: &Guardian,
    w: &super::guardian::Watch,
    window_name: &str,
    window: Duration,
) -> Value {
    let p = g.profile(w);
    let key = session::audit_scope(&p);
    let to = SystemClock.now().0 + 1;
    let from = to - window.as_millis() as i64;
    let bucket_ms = (window.as_millis() as i64 / BUCKETS).max(1);
    let log = AuditLog::open_existing(&crate::audit::path_for(&p));
    let mut audit_error = None;
    let (total, rows, buckets) = match &log {
        Ok(Some(log)) => {
            let total = log.count(&key, from, to).unwrap_or(0);
            let rows = if total <= MAX_MARKS {
                log.events(&key, from, 0)
                    .map(|r| r.into_iter().filter(|e| e.at < to).collect::<Vec<_>>())
                    .ok()
            } else {
                None
            };
            let buckets = log
                .bucket_counts(&key, from, to, bucket_ms)
                .unwrap_or_default();
            (total, rows, buckets)
        }
        Ok(None) => {
            audit_error = Some(format!(
                "no audit log yet at {}: no event has been recorded for this profile",
                crate::audit::path_for(&p).display()
            ));
            (0, Some(Vec::new()), Vec::new())
        }
        Err(e) => {
            // No events to draw, and why (not "too many to draw").
            audit_error = Some(e.to_string());
            (0, Some(Vec::new()), Vec::new())
        }
    };
    let mut series: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for (b, kind, n) in buckets {
        let fake = EventRow {
            id: 0,
            at: 0,
            kind: kind.clone(),
            cause: None,
            grant: None,
            generation: None,
            fingerprint: None,
            store_key: String::new(),
            profile: String::new(),
            origin: None,
            event: Value::Null,
        };
        let cat = category(&fake, None);
        let s = series
            .entry(cat)
            .or_insert_with(|| vec![0; BUCKETS as usize + 1]);
        if let Some(slot) = s.get_mut(b.clamp(0, BUCKETS) as usize) {
            *slot += n;
        }
    }
    let categories: Vec<&str> = rows
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, r)| category(r, i.checked_sub(1).and_then(|j| rows.as_ref()?.get(j))))
        .collect();
    let causes = rows
        .as_deref()
        .map(|r| super::death_causes::of_deaths(r, &categories, &g.org_evidence(w)))
        .unwrap_or_default();
    let marks: Option<Vec<Value>> = rows.as_ref().map(|rows| {
        rows.iter()
            .zip(&categories)
            .map(|(r, cat)| {
                json!({
                    "id": r.id, "at": r.at, "kind": r.kind, "category": cat,
                    "cause": r.cause, "generation": r.generation, "grant": r.grant,
                    "api": r.event.get("api").and_then(Value::as_str),
                    "reason": r.event.get("reason").and_then(Value::as_str),
                    "label": label(r),
                    "death_cause": causes.get(&r.id),
                })
            })
            .collect()
    });
    // The legend: each cause with its deaths, most first.
    let mut tally: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for c in causes.values() {
        tally
            .entry(c.cause.as_str())
            .or_insert((c.title.as_str(), 0))
            .1 += 1;
    }
    let mut death_causes: Vec<Value> = tally
        .into_iter()
        .map(|(cause, (title, n))| json!({"cause": cause, "title": title, "deaths": n}))
        .collect();
    death_causes.sort_by_key(|v| std::cmp::Reverse(v["deaths"].as_u64().unwrap_or(0)));
    let (logins, logins_read_at) = g.login_history(w);
    let offset = w.manager.server_clock().offset();
    let view = g.view(w);
    let patterns = rows
        .as_ref()
        .map(|r| super::patterns::of_profile(&p, r, logins.as_deref().ok(), offset, window, to))
        .unwrap_or_default();
    let alerts: Vec<Value> = sfkeep::sync::lock(&g.alerts)
        .iter()
        .filter(|a| a.profile == w.name)
        .map(|a| {
            json!({"at": a.at.0 - offset, "server_at": a.at, "kind": a.kind.as_str(), "status": a.status, "summary": a.summary})
        })
        .collect();
    json!({
        "profile": w.name,
        "window": window_name,
        "from": from,
        "to": to,
        "clock_offset_ms": offset,
        "total": total,
        "events": marks,
        "death_causes": death_causes,
        "audit_error": audit_error,
        "buckets": {"size_ms": bucket_ms, "series": series},
        "login_history": match logins {
            Ok(rows) => json!({"read_at": logins_read_at, "rows": rows.iter().map(|l| json!({
                "server_at": l.at, "at": l.at.0 - offset, "source_ip": l.source_ip, "status": l.status,
                "application": l.application, "login_type": l.login_type,
            })).collect::<Vec<_>>()}),
            Err(e) => json!({"error": e}),
        },
        "alerts": alerts,
        "api_samples": view["api_samples"].as_array().map(|a| a.iter().map(|s| {
            json!([s[0].as_i64().unwrap_or(0) - offset, s[1], s[2]])
        }).collect::<Vec<_>>()),
        "patterns": patterns,
    })
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(stop)
        .await
}
