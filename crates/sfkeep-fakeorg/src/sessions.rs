//! Validation of a presented session (REST bearer token, SOAP session id, identity URL
//! token) against inactivity timeout, IP locking, revocation and user state.
//!
//! The timeout is an inactivity timeout on the org's clock. Activity extends it, but
//! only once at least half the timeout has passed since the last extension
//! (docs/salesforce-wire.md §8.1: "extend on use after ≥ ½ timeout", UNVERIFIED in official
//! docs but what the admin handbooks describe).

use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::state::{Inner, Session};

/// Why a session was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, expired, ended, revoked or used from the wrong IP: "Session expired or invalid".
    Invalid,
    /// Valid session without the `api` scope: "This session is not valid for use with the REST API".
    NotApi,
    /// Valid session of a user without the "API Enabled" permission: `API_DISABLED_FOR_ORG`.
    ApiDisabled,
    /// A SOAP `login()` session obtained with an expired password (`passwordExpired` true):
    /// only `setPassword()` is allowed, every other call is
    /// `INVALID_OPERATION_WITH_EXPIRED_PASSWORD` (docs/guardian.md, password expiry).
    PasswordExpired,
}

/// The outcome of reading the `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthHeader {
    /// A token was presented.
    Token(String),
    /// No header at all.
    Missing,
    /// A header that is neither `Bearer x` nor `OAuth x`.
    Malformed,
}

/// Reads `Authorization: Bearer <tok>` or `Authorization: OAuth <tok>` (§1.1).
pub fn auth_header(headers: &HeaderMap) -> AuthHeader {
    let Some(v) = headers.get(AUTHORIZATION) else {
        return AuthHeader::Missing;
    };
    let Ok(v) = v.to_str() else {
        return AuthHeader::Malformed;
    };
    let mut parts = v.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        && !token.is_empty()
    {
        AuthHeader::Token(token.to_owned())
    } else {
        AuthHeader::Malformed
    }
}

/// Checks `token` used from `peer`; on success records the activity and returns a copy
/// of the session.
pub fn validate(inner: &mut Inner, token: &str, peer: IpAddr) -> Result<Session, Refusal> {
    let now = inner.now();
    let lock_to_ip = inner.network.lock_sessions_to_ip;
    let Some(s) = inner.sessions.get(token) else {
        return Err(Refusal::Invalid);
    };
    if now >= s.expires_at() {
        inner.sessions.remove(token);
        return Err(Refusal::Invalid);
    }
    let user_ok = inner
        .user_by_id(&s.user_id)
        .is_some_and(|i| inner.users[i].active && !inner.users[i].frozen);
    if !user_ok {
        inner.sessions.remove(token);
        return Err(Refusal::Invalid);
    }
    // A locked session used from another address is refused but not ended: it still
    // works from where it was created.
    if lock_to_ip && s.source_ip != peer {
        return Err(Refusal::Invalid);
    }
    let Some(s) = inner.sessions.get_mut(token) else {
        return Err(Refusal::Invalid);
    };
    let half = time::Duration::seconds((s.timeout_secs / 2) as i64);
    if now - s.last_modified >= half {
        s.last_modified = now;
    }
    Ok(s.clone())
}

/// Like [`validate`], and also requires the `api` scope and the user's "API Enabled"
/// permission (REST, SOAP and Bulk API calls).
pub fn validate_api(inner: &mut Inner, token: &str, peer: IpAddr) -> Result<Session, Refusal> {
    let s = validate(inner, token, peer)?;
    if !s.api {
        return Err(Refusal::NotApi);
    }
    let Some(ui) = inner.user_by_id(&s.user_id) else {
        return Err(Refusal::Invalid);
    };
    if !inner.users[ui].api_enabled {
        return Err(Refusal::ApiDisabled);
    }
    let expired_at_login = s.client_id.is_none()
        && inner
            .password_expires_at(ui)
            .is_some_and(|at| s.created >= at);
    if expired_at_login {
        return Err(Refusal::PasswordExpired);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(auth_header(&h), AuthHeader::Missing);
        h.insert(AUTHORIZATION, HeaderValue::from_static("OAuth abc"));
        assert_eq!(auth_header(&h), AuthHeader::Token("abc".into()));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer  x!y "));
        assert_eq!(auth_header(&h), AuthHeader::Token("x!y".into()));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(auth_header(&h), AuthHeader::Malformed);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(auth_header(&h), AuthHeader::Malformed);
    }
}
