//! The admin API under `/_fake` (JSON in and out; loopback peers only, others get 403).
//!
//! The calls of the admin table (docs/fake-org.md#the-admin-api):
//!
//! | call | effect |
//! |---|---|
//! | `POST /_fake/clock/advance {"seconds":N}` | the org's clock moves; inactive sessions time out |
//! | `POST /_fake/users/{username}/logout` | all that user's sessions end (refresh tokens survive) |
//! | `POST /_fake/users/{username}/password {"password":"…"}` | sessions end, the old password stops working |
//! | `POST /_fake/users/{username}/freeze` · `unfreeze` · `deactivate` · `activate` | as in Setup |
//! | `POST /_fake/apps/{client_id}/revoke` | all the app's access and refresh tokens are revoked |
//! | `PUT /_fake/apps/{client_id}/policy` | partial update: `refresh_token_policy`, `rotate_refresh_tokens`, `session_timeout_seconds` (null clears), `introspect_all`, `jwt_preapproved`, `api_scope` |
//! | `PUT /_fake/network {"login_ip_ranges":[["lo","hi"]],"lock_sessions_to_ip":true}` | partial update; `[]`/null ranges = unrestricted |
//! | `POST /_fake/faults {"path_prefix","status","count","latency_ms","reset","reset_after","after_commit","hold","html"}` · `DELETE /_fake/faults` · `POST /_fake/faults/release` | injected failures (`reset`: the connection drops before the request is processed; `reset_after`: after it was processed and committed, so only the answer is lost; `after_commit`: the request is processed and committed first, then `latency_ms` passes before the answer, which `reset` drops; `hold` with `after_commit`: the answer then waits for `faults/release`, and `stats` `answers_held` counts the waiting ones) |
//! | `POST /_fake/device/{user_code}/approve {"username":"…"}` | the integration user (or the user named) approves a pending device login |
//! | `POST /_fake/records/Account/touch {"count":N}` | N accounts change (new SystemModstamp) |
//! | `GET /_fake/stats` | counters, plus `connections_open` (accepted, not yet closed; the caller's own included) and `requests_in_flight` (API requests not yet processed; see `src/activity.rs`) |
//!
//! Added for users and tests:
//!
//! | call | effect |
//! |---|---|
//! | `GET /_fake/clock` | the org's current time |
//! | `GET /_fake/users` | users (no secrets) |
//! | `GET /_fake/apps` | connected apps with their consumer keys, secrets and policies (the "other" app's secret is only here) |
//! | `GET /_fake/network`, `GET /_fake/faults` | current settings |
//! | `GET /_fake/limits` · `PUT /_fake/limits {"daily_api_limit","login_rate_limit_per_hour","api_used"}` | API and login limits |
//! | `PUT /_fake/records/Account/commit-lag {"every":N,"lag_ms":M}` · `GET` | commit lag, as on Salesforce: every Nth Account write (create, update, upsert, delete, touch) becomes visible M ms of org time after its `SystemModstamp`, so later-stamped writes are seen first; its writer is answered at the commit. `{"every":0}` turns it off; `GET` also counts the writes `pending` (src/commits.rs) |
//! | `POST /_fake/clock/skew {"seconds":N}` | the org's clock moves by N seconds (negative: back) and nothing ages: sessions, refresh tokens and codes move with it, as when the calling machine's clock is off by −N (clock skew, not time passing) |
//! | `GET /_fake/password-policy` · `PUT /_fake/password-policy {"expire_after_seconds":N}` (`null`: never) | Password Policies' "User passwords expire in" (default: never), counted from `User.LastPasswordChangeDate`, which a password change moves. Once expired, the OAuth password grant answers `invalid_grant` / `authentication failure` (UNVERIFIED) and a SOAP `login()` succeeds with `passwordExpired` true and a session whose every API call is `INVALID_OPERATION_WITH_EXPIRED_PASSWORD` |
//! | `PUT /_fake/users/{username}/permissions {"api_enabled":false,"unreadable_objects":["SetupAuditTrail"]}` | partial update of the user's profile permissions: without "API Enabled" every REST, SOAP and Bulk call (and SOAP `login()`) is refused with `API_DISABLED_FOR_ORG` while OAuth still issues tokens; an unreadable object answers SOQL with `INVALID_TYPE` (a diagnosis object whose permission was taken away) |
//!
//! Setup actions write SetupAuditTrail rows. Salesforce's exact `Action` values for these
//! events are UNVERIFIED (docs/salesforce-wire.md §9); ours are plausible lower-case verbs.
//! A logout is not a Setup action, so it writes none.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use crate::ids;
use crate::state::{Fault, Inner, Org, RefreshPolicy};
use crate::wire::{self, RawBody};

fn ok(v: Value) -> Response {
    wire::json(StatusCode::OK, &v)
}

fn bad(msg: &str, detail: Value) -> Response {
    wire::admin_error(StatusCode::BAD_REQUEST, msg, detail)
}

fn parse_json(body: &[u8]) -> Result<Value, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Null) => Ok(json!({})),
        Ok(_) => Err(bad(
            "invalid JSON body",
            json!({"detail": "expected a JSON object"}),
        )),
        Err(e) => Err(bad("invalid JSON body", json!({"detail": e.to_string()}))),
    }
}

/// Everything under `/_fake/`.
pub async fn dispatch(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    RawBody(body): RawBody,
) -> Response {
    if !peer.ip().is_loopback() {
        return wire::admin_error(
            StatusCode::FORBIDDEN,
            "the admin API only answers loopback clients",
            json!({}),
        );
    }
    let segs: Vec<String> = uri
        .path()
        .trim_start_matches("/_fake")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(ids::percent_decode)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let body = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (response, wait) = respond(org.clone(), method, uri, seg, body);
    // A touch that lagged is answered once it commits, like any write (src/commits.rs).
    org.wait_for_commits(wait).await;
    response
}

/// The response to an admin call, and the commits it must wait for: everything done under
/// the org's lock, which is released before any waiting.
fn respond(
    org: Arc<Org>,
    method: Method,
    uri: Uri,
    seg: Vec<&str>,
    body: Value,
) -> (Response, Option<crate::commits::CommitWait>) {
    let mut inner = org.lock();
    let m = &method;
    let response = match (m, seg.as_slice()) {
        (&Method::GET, ["stats"]) => {
            let mut stats = inner.stats_json();
            stats["connections_open"] = json!(org.activity.connections_open());
            stats["requests_in_flight"] = json!(org.activity.requests_in_flight());
            stats["answers_held"] = json!(org.activity.answers_held());
            ok(stats)
        }
        // Test hook for leak audits: every access and refresh token this org ever issued.
        (&Method::GET, ["tokens"]) => ok(json!({
            "access_tokens": inner.issued_access,
            "refresh_tokens": inner.refresh.keys().collect::<Vec<_>>(),
            "current_refresh_tokens": inner
                .families
                .values()
                .filter(|f| !f.revoked)
                .map(|f| f.current.as_str())
                .collect::<Vec<_>>(),
        })),
        // Test hook: a new refresh token for the default app and the integration user, as a
        // fresh authorization-code login would leave (crash-safety tests re-authorize with it).
        (&Method::POST, ["tokens"]) => {
            let token = crate::setup::initial_refresh_token(&mut inner, &org.pod, &org.base_url);
            ok(json!({ "refresh_token": token }))
        }
        (&Method::GET, ["clock"]) => ok(json!({"now": ids::sf_datetime(inner.now())})),
        (&Method::POST, ["clock", "advance"]) => clock_advance(&mut inner, &body),
        (&Method::POST, ["clock", "skew"]) => clock_skew(&mut inner, &body),
        (&Method::PUT | &Method::PATCH, ["users", name, "permissions"]) => {
            permissions(&org, &mut inner, name, &body)
        }
        (&Method::GET, ["users"]) => ok(users(&inner)),
        (&Method::POST, ["users", name, action]) => {
            user_action(&org, &mut inner, name, action, &body).unwrap_or_else(|| unknown(m, &uri))
        }
        (&Method::GET, ["apps"]) => ok(apps(&inner)),
        (&Method::POST, ["apps", client_id, "revoke"]) => app_revoke(&org, &mut inner, client_id),
        (&Method::PUT | &Method::PATCH, ["apps", client_id, "policy"]) => {
            app_policy(&org, &mut inner, client_id, &body)
        }
        (&Method::GET, ["network"]) => ok(json!(inner.network)),
        (&Method::PUT | &Method::PATCH, ["network"]) => network(&org, &mut inner, &body),
        (&Method::GET, ["faults"]) => ok(json!({"faults": inner.faults})),
        (&Method::POST, ["faults"]) => add_fault(&mut inner, body),
        (&Method::POST, ["faults", "release"]) => {
            org.activity.release_held();
            ok(json!({"released": true}))
        }
        (&Method::DELETE, ["faults"]) => {
            inner.faults.clear();
            ok(json!({"faults": []}))
        }
        (&Method::POST, ["device", user_code, "approve"]) => {
            device_approve(&mut inner, user_code, &body)
        }
        (&Method::POST, ["records", obj, "touch"]) if obj.eq_ignore_ascii_case("Account") => {
            touch(&mut inner, &body)
        }
        (&Method::GET, ["records", obj, "commit-lag"]) if obj.eq_ignore_ascii_case("Account") => {
            ok(commit_lag_json(&inner))
        }
        (&Method::PUT | &Method::PATCH, ["records", obj, "commit-lag"])
            if obj.eq_ignore_ascii_case("Account") =>
        {
            set_commit_lag(&mut inner, &body)
        }
        (&Method::GET, ["password-policy"]) => ok(password_policy_json(&inner)),
        (&Method::PUT | &Method::PATCH, ["password-policy"]) => {
            set_password_policy(&org, &mut inner, &body)
        }
        (&Method::GET, ["limits"]) => ok(limits(&inner)),
        (&Method::PUT | &Method::PATCH, ["limits"]) => set_limits(&mut inner, &body),
        _ => unknown(m, &uri),
    };
    (response, inner.accounts.commits_mut().take_wait())
}

fn unknown(method: &Method, uri: &Uri) -> Response {
    wire::admin_error(
        StatusCode::NOT_FOUND,
        "unknown admin call",
        json!({"method": method.as_str(), "path": uri.path()}),
    )
}

fn clock_advance(inner: &mut Inner, body: &Value) -> Response {
    let Some(secs) = body
        .get("seconds")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
    else {
        return bad("\"seconds\" must be a non-negative integer", json!({}));
    };
    inner.clock_offset += time::Duration::seconds(secs);
    ok(json!({"now": ids::sf_datetime(inner.now())}))
}

fn clock_skew(inner: &mut Inner, body: &Value) -> Response {
    let Some(secs) = body.get("seconds").and_then(Value::as_i64) else {
        return bad(
            "\"seconds\" must be an integer (negative moves back)",
            json!({}),
        );
    };
    inner.skew(time::Duration::seconds(secs));
    ok(json!({"now": ids::sf_datetime(inner.now())}))
}

fn users(inner: &Inner) -> Value {
    let list: Vec<Value> = inner
        .users
        .iter()
        .map(|u| {
            json!({"id": u.id, "username": u.username, "active": u.active, "frozen": u.frozen,
                   "api_enabled": u.api_enabled, "unreadable_objects": u.unreadable_objects})
        })
        .collect();
    json!({"users": list})
}

/// `PUT /_fake/users/{username}/permissions`: a partial update of the user's profile
/// permissions, written to SetupAuditTrail like a profile edit.
fn permissions(org: &Org, inner: &mut Inner, name: &str, body: &Value) -> Response {
    let Some(ui) = inner.user_by_name(name) else {
        return wire::admin_error(
            StatusCode::NOT_FOUND,
            "unknown user",
            json!({"username": name}),
        );
    };
    let mut api_enabled = inner.users[ui].api_enabled;
    let mut unreadable = inner.users[ui].unreadable_objects.clone();
    for (k, v) in body.as_object().into_iter().flatten() {
        match k.as_str() {
            "api_enabled" => match v.as_bool() {
                Some(b) => api_enabled = b,
                None => return bad("api_enabled must be a boolean", json!({})),
            },
            "unreadable_objects" => {
                let mut list = Vec::new();
                for o in v.as_array().into_iter().flatten() {
                    let canonical = o.as_str().and_then(|o| {
                        crate::objects::OBJECTS
                            .iter()
                            .find(|c| c.eq_ignore_ascii_case(o))
                    });
                    match canonical {
                        Some(c) => list.push((*c).to_owned()),
                        None => {
                            return bad(
                                "unreadable_objects must name queryable objects",
                                json!({"object": o, "objects": crate::objects::OBJECTS}),
                            );
                        }
                    }
                }
                if !v.is_array() && !v.is_null() {
                    return bad(
                        "unreadable_objects must be a list of object names",
                        json!({}),
                    );
                }
                unreadable = list;
            }
            _ => return bad("unknown permission", json!({"field": k})),
        }
    }
    let u = &mut inner.users[ui];
    let changed_api = u.api_enabled != api_enabled;
    u.api_enabled = api_enabled;
    u.unreadable_objects = unreadable.clone();
    let username = u.username.clone();
    let mut what = Vec::new();
    if changed_api {
        what.push(format!(
            "API Enabled was changed from {} to {}",
            !api_enabled, api_enabled
        ));
    }
    if body.get("unreadable_objects").is_some() {
        what.push(format!("objects not readable: [{}]", unreadable.join(", ")));
    }
    if !what.is_empty() {
        // UNVERIFIED wording: Salesforce's Display text of a profile permission change.
        inner.audit(
            &org.pod,
            "profilepermissionchanged",
            "Manage Users",
            format!(
                "Changed profile permissions of user {username}: {}",
                what.join("; ")
            ),
        );
    }
    ok(json!({"username": username, "api_enabled": api_enabled, "unreadable_objects": unreadable}))
}

fn user_action(
    org: &Org,
    inner: &mut Inner,
    name: &str,
    action: &str,
    body: &Value,
) -> Option<Response> {
    let Some(ui) = inner.user_by_name(name) else {
        return Some(wire::admin_error(
            StatusCode::NOT_FOUND,
            "unknown user",
            json!({"username": name}),
        ));
    };
    let now = inner.now();
    let user_id = inner.users[ui].id.clone();
    let username = inner.users[ui].username.clone();
    let ended = match action {
        "logout" => inner.end_sessions(|s| s.user_id == user_id),
        "password" => {
            let Some(pw) = body
                .get("password")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
            else {
                return Some(bad("\"password\" must be a non-empty string", json!({})));
            };
            let u = &mut inner.users[ui];
            u.password = pw.to_owned();
            u.last_password_change = now;
            // The wire reference is silent on whether a password change revokes OAuth refresh
            // tokens; we keep them valid (only sessions end), so a refresh-token integration
            // recovers while a password/SOAP-login integration must be reconfigured.
            let n = inner.end_sessions(|s| s.user_id == user_id);
            inner.audit(
                &org.pod,
                "changedpassword",
                "Manage Users",
                format!("Changed password for user {username}"),
            );
            n
        }
        "freeze" | "unfreeze" => {
            let freeze = action == "freeze";
            inner.users[ui].frozen = freeze;
            inner.users[ui].login_modified = now;
            let n = if freeze {
                inner.end_sessions(|s| s.user_id == user_id)
            } else {
                0
            };
            let (act, verb) = if freeze {
                ("frozeuser", "Froze")
            } else {
                ("unfrozeuser", "Unfroze")
            };
            inner.audit(
                &org.pod,
                act,
                "Manage Users",
                format!("{verb} user {username}"),
            );
            n
        }
        "deactivate" | "activate" => {
            let activate = action == "activate";
            inner.users[ui].active = activate;
            // Refresh tokens survive deactivation; while inactive they answer "inactive user".
            let n = if activate {
                0
            } else {
                inner.end_sessions(|s| s.user_id == user_id)
            };
            let (act, verb) = if activate {
                ("activateduser", "Activated")
            } else {
                ("deactivateduser", "Deactivated")
            };
            inner.audit(
                &org.pod,
                act,
                "Manage Users",
                format!("{verb} user {username}"),
            );
            n
        }
        _ => return None,
    };
    Some(ok(
        json!({"username": username, "action": action, "sessions_ended": ended}),
    ))
}

fn apps(inner: &Inner) -> Value {
    let list: Vec<Value> = inner
        .apps
        .iter()
        .map(|a| {
            json!({"name": a.name, "client_id": a.client_id, "client_secret": a.client_secret,
                   "policy": a.policy})
        })
        .collect();
    json!({"apps": list})
}

fn app_index(inner: &Inner, client_id: &str) -> Result<usize, Response> {
    inner
        .app_by_client_id(client_id)
        .ok_or_else(|| wire::admin_error(StatusCode::NOT_FOUND, "unknown connected app", json!({})))
}

fn app_revoke(org: &Org, inner: &mut Inner, client_id: &str) -> Response {
    let ai = match app_index(inner, client_id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let cid = inner.apps[ai].client_id.clone();
    let ended = inner.end_sessions(|s| s.client_id.as_deref() == Some(cid.as_str()));
    let mut revoked = 0;
    for f in inner
        .families
        .values_mut()
        .filter(|f| f.client_id == cid && !f.revoked)
    {
        f.revoked = true;
        revoked += 1;
    }
    let name = inner.apps[ai].name.clone();
    inner.audit(
        &org.pod,
        "connectedapprevoketokens",
        "Connected Apps",
        format!("Revoked all OAuth tokens of connected app {name}"),
    );
    ok(json!({"sessions_ended": ended, "refresh_tokens_revoked": revoked}))
}

fn app_policy(org: &Org, inner: &mut Inner, client_id: &str, body: &Value) -> Response {
    let ai = match app_index(inner, client_id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut policy = inner.apps[ai].policy.clone();
    let Some(obj) = body.as_object() else {
        return bad("expected a JSON object", json!({}));
    };
    for (k, v) in obj {
        let flag = || {
            v.as_bool()
                .ok_or_else(|| bad("expected a boolean", json!({"field": k})))
        };
        let res = match k.as_str() {
            "refresh_token_policy" => serde_json::from_value::<RefreshPolicy>(v.clone())
                .map(|p| policy.refresh_token_policy = p)
                .map_err(|_| {
                    bad(
                        "refresh_token_policy must be \"valid_until_revoked\", \"immediately_expire\", {\"expire_after_seconds\":N} or {\"expire_if_unused_seconds\":N}",
                        json!({}),
                    )
                }),
            "rotate_refresh_tokens" => flag().map(|b| policy.rotate_refresh_tokens = b),
            "introspect_all" => flag().map(|b| policy.introspect_all = b),
            "jwt_preapproved" => flag().map(|b| policy.jwt_preapproved = b),
            "api_scope" => flag().map(|b| policy.api_scope = b),
            "session_timeout_seconds" => match v {
                Value::Null => {
                    policy.session_timeout_seconds = None;
                    Ok(())
                }
                _ => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(|n| policy.session_timeout_seconds = Some(n))
                    .ok_or_else(|| bad("session_timeout_seconds must be a positive integer or null", json!({}))),
            },
            _ => Err(bad("unknown policy field", json!({"field": k}))),
        };
        if let Err(r) = res {
            return r;
        }
    }
    inner.apps[ai].policy = policy.clone();
    let name = inner.apps[ai].name.clone();
    let fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    inner.audit(
        &org.pod,
        "connectedappupdatepolicy",
        "Connected Apps",
        format!(
            "Changed OAuth policies ({}) of connected app {name}",
            fields.join(", ")
        ),
    );
    ok(json!({"client_id": client_id, "policy": policy}))
}

fn network(org: &Org, inner: &mut Inner, body: &Value) -> Response {
    let mut net = inner.network.clone();
    if let Some(v) = body.get("login_ip_ranges") {
        let mut ranges = Vec::new();
        if !v.is_null() {
            let Some(list) = v.as_array() else {
                return bad(
                    "login_ip_ranges must be a list of [start, end] pairs",
                    json!({}),
                );
            };
            for pair in list {
                let parsed = pair.as_array().filter(|p| p.len() == 2).and_then(|p| {
                    let lo = p[0].as_str()?.parse::<IpAddr>().ok()?;
                    let hi = p[1].as_str()?.parse::<IpAddr>().ok()?;
                    Some((lo, hi))
                });
                match parsed {
                    Some(r) => ranges.push(r),
                    None => {
                        return bad(
                            "login_ip_ranges must be a list of [start, end] IP address pairs",
                            json!({"range": pair}),
                        );
                    }
                }
            }
        }
        net.login_ip_ranges = ranges;
    }
    if let Some(v) = body.get("lock_sessions_to_ip") {
        match v.as_bool() {
            Some(b) => net.lock_sessions_to_ip = b,
            None => return bad("lock_sessions_to_ip must be a boolean", json!({})),
        }
    }
    inner.network = net.clone();
    inner.audit(
        &org.pod,
        "changedsessionsettings",
        "Session Settings",
        "Changed login IP ranges / session IP locking".to_owned(),
    );
    ok(json!(net))
}

fn add_fault(inner: &mut Inner, body: Value) -> Response {
    let fault: Fault = match serde_json::from_value(body) {
        Ok(f) => f,
        Err(e) => return bad("invalid fault", json!({"detail": e.to_string()})),
    };
    if !fault.path_prefix.starts_with('/') {
        return bad("path_prefix must start with '/'", json!({}));
    }
    if fault.status.is_some_and(|s| !(100..=599).contains(&s)) {
        return bad("status must be an HTTP status code", json!({}));
    }
    inner.faults.push(fault);
    ok(json!({"faults": inner.faults}))
}

fn device_approve(inner: &mut Inner, user_code: &str, body: &Value) -> Response {
    // The person approving signs in first: the integration user unless `username` names
    // another (a test of a login by the wrong person).
    let user = match body.get("username").and_then(Value::as_str) {
        None => Some(0),
        Some(name) => inner.user_by_name(name),
    };
    let Some(user) = user else {
        return wire::admin_error(StatusCode::NOT_FOUND, "unknown username", json!({}));
    };
    let user_id = inner.users[user].id.clone();
    match inner
        .devices
        .iter_mut()
        .find(|d| d.user_code.eq_ignore_ascii_case(user_code))
    {
        Some(d) => {
            d.approved_by = Some(user_id);
            ok(json!({"user_code": d.user_code, "approved": true}))
        }
        None => wire::admin_error(StatusCode::NOT_FOUND, "unknown user_code", json!({})),
    }
}

fn touch(inner: &mut Inner, body: &Value) -> Response {
    let Some(n) = body.get("count").and_then(Value::as_u64) else {
        return bad("\"count\" must be a non-negative integer", json!({}));
    };
    let now = inner.now();
    let ids = inner.accounts.touch(n as usize, now);
    ok(json!({"touched": ids.len(), "ids": ids}))
}

fn commit_lag_json(inner: &Inner) -> Value {
    let commits = inner.accounts.commits();
    let lag = commits.lag();
    json!({"every": lag.every, "lag_ms": lag.lag_ms, "pending": commits.pending()})
}

fn set_commit_lag(inner: &mut Inner, body: &Value) -> Response {
    let mut lag = inner.accounts.commits().lag();
    for (k, v) in body.as_object().into_iter().flatten() {
        let Some(n) = v.as_u64() else {
            return bad(
                "commit-lag settings must be non-negative integers",
                json!({"field": k}),
            );
        };
        match k.as_str() {
            "every" => lag.every = n,
            "lag_ms" => lag.lag_ms = n,
            _ => return bad("unknown commit-lag setting", json!({"field": k})),
        }
    }
    inner.accounts.commits_mut().set_lag(lag);
    ok(commit_lag_json(inner))
}

fn password_policy_json(inner: &Inner) -> Value {
    let users: Vec<Value> = (0..inner.users.len())
        .map(|ui| {
            json!({
                "username": inner.users[ui].username,
                "last_password_change": ids::sf_datetime(inner.users[ui].last_password_change),
                "expires_at": inner.password_expires_at(ui).map(ids::sf_datetime),
                "expired": inner.password_expired(ui),
            })
        })
        .collect();
    json!({"expire_after_seconds": inner.password_max_age_secs, "users": users})
}

/// Password Policies' "User passwords expire in": `{"expire_after_seconds": N}`, or `null`
/// for "Never expires".
fn set_password_policy(org: &Org, inner: &mut Inner, body: &Value) -> Response {
    let value = match body.get("expire_after_seconds") {
        Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| *n > 0) {
            Some(n) => Some(n),
            None => {
                return bad(
                    "\"expire_after_seconds\" must be a positive integer or null",
                    json!({}),
                );
            }
        },
        None => return bad("\"expire_after_seconds\" is required", json!({})),
    };
    inner.password_max_age_secs = value;
    inner.audit(
        &org.pod,
        "changedpasswordexpiration",
        "Password Policies",
        match value {
            Some(n) => format!("Changed password expiration to {} days", n / 86_400),
            None => "Changed password expiration to Never expires".to_owned(),
        },
    );
    ok(password_policy_json(inner))
}

fn limits(inner: &Inner) -> Value {
    json!({
        "daily_api_limit": inner.daily_api_limit,
        "api_used": inner.api_used,
        "login_rate_limit_per_hour": inner.login_rate_limit,
    })
}

fn set_limits(inner: &mut Inner, body: &Value) -> Response {
    for (k, v) in body.as_object().into_iter().flatten() {
        let Some(n) = v.as_u64() else {
            return bad("limits must be non-negative integers", json!({"field": k}));
        };
        match k.as_str() {
            "daily_api_limit" => inner.daily_api_limit = n,
            "api_used" => inner.api_used = n,
            "login_rate_limit_per_hour" => inner.login_rate_limit = n.min(u32::MAX as u64) as u32,
            _ => return bad("unknown limit", json!({"field": k})),
        }
    }
    ok(limits(inner))
}
