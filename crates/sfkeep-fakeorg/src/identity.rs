//! Who the token belongs to: the identity URL `/id/{orgId}/{userId}` (docs/salesforce-wire.md §3.3) and the OIDC
//! `/services/oauth2/userinfo` (§3.4). A bad or dead token gets Salesforce's plain-text
//! `403 Bad_OAuth_Token`, not JSON and not 401.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::formats::{self, Format};
use crate::ids;
use crate::sessions::{self, AuthHeader};
use crate::state::{Org, User};
use crate::wire;

/// API version used when `?version=latest`.
pub const LATEST_VERSION: &str = "66.0";

fn bad_token() -> Response {
    let mut r = (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    r
}

/// The token from the `Authorization` header or an `oauth_token` query parameter.
fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    match sessions::auth_header(headers) {
        AuthHeader::Token(t) => Some(t),
        _ => ids::pair(&ids::query_pairs(uri.query()), "oauth_token").map(str::to_owned),
    }
}

fn urls(base: &str, org_id: &str, user_id: &str, version: &str) -> Value {
    let d = format!("{base}/services/data/v{version}");
    json!({
        "enterprise": format!("{base}/services/Soap/c/{version}/{org_id}"),
        "metadata": format!("{base}/services/Soap/m/{version}/{org_id}"),
        "partner": format!("{base}/services/Soap/u/{version}/{org_id}"),
        "rest": format!("{d}/"),
        "sobjects": format!("{d}/sobjects/"),
        "search": format!("{d}/search/"),
        "query": format!("{d}/query/"),
        "recent": format!("{d}/recent/"),
        "tooling_soap": format!("{base}/services/Soap/T/{version}/{org_id}"),
        "tooling_rest": format!("{d}/tooling/"),
        "profile": format!("{base}/{user_id}"),
        "feeds": format!("{d}/chatter/feeds"),
        "groups": format!("{d}/chatter/groups"),
        "users": format!("{d}/chatter/users"),
        "feed_items": format!("{d}/chatter/feed-items"),
        "feed_elements": format!("{d}/chatter/feed-elements"),
        "custom_domain": base,
    })
}

fn photos(base: &str) -> Value {
    json!({
        "picture": format!("{base}/profilephoto/005/F"),
        "thumbnail": format!("{base}/profilephoto/005/T"),
    })
}

fn identity_doc(org: &Org, u: &User, version: &str) -> Value {
    json!({
        "id": org.identity_url(&u.id),
        "asserted_user": true,
        "user_id": u.id,
        "organization_id": org.org_id,
        "username": u.username,
        "nick_name": u.username.split('@').next().unwrap_or_default(),
        "display_name": u.full_name(),
        "email": u.email,
        "email_verified": true,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "timezone": "GMT",
        "photos": photos(&org.base_url),
        "addr_street": null, "addr_city": null, "addr_state": null, "addr_country": "US", "addr_zip": null,
        "mobile_phone": null, "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": {"created_date": null, "body": null},
        "urls": urls(&org.base_url, &org.org_id, &u.id, version),
        "active": u.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": ids::sf_datetime(u.last_password_change),
        "is_app_installed": true,
    })
}

fn requested_version(uri: &Uri) -> String {
    match ids::pair(&ids::query_pairs(uri.query()), "version") {
        Some("latest") => LATEST_VERSION.to_owned(),
        Some(v) => v.to_owned(),
        // Without ?version the URLs carry the literal `{version}` (§3.3).
        None => "{version}".to_owned(),
    }
}

/// `2021-04-28T20:54:09.000Z`: the XML (xsd:dateTime) form of a datetime.
fn xsd_datetime(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// `GET|POST /id/{orgId}/{userId}`, in JSON or, with `format=xml` or `Accept:
/// application/xml`, in the DOC sample's XML (see `formats`). A bad token is the plain-text
/// 403 whatever the format (the recordings show no other shape).
pub async fn identity(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    // Parsed by hand so that no extractor rejection text can reach the wire.
    let mut parts = uri.path().trim_start_matches("/id/").split('/');
    let org_id = ids::percent_decode(parts.next().unwrap_or_default());
    let user_id = ids::percent_decode(parts.next().unwrap_or_default());
    let mut inner = org.lock();
    let session = presented_token(&headers, &uri)
        .and_then(|t| sessions::validate(&mut inner, &t, peer.ip()).ok());
    if session.is_none() {
        inner.stats.invalid_session_responses += 1;
        return bad_token();
    }
    let org_ok = org_id.len() >= 15 && org.org_id.starts_with(&org_id[..15]);
    let user = (user_id.len() >= 15)
        .then(|| {
            inner
                .users
                .iter()
                .find(|u| u.id.starts_with(&user_id[..15]))
        })
        .flatten();
    match (org_ok, user) {
        (true, Some(u)) => {
            let query = ids::query_pairs(uri.query());
            let fmt = formats::negotiate(ids::pair(&query, "format"), &headers);
            let mut doc = identity_doc(&org, u, &requested_version(&uri));
            if fmt == Format::Xml {
                // DOC: the XML sample writes `2021-04-28T20:54:09.000Z` where the JSON one
                // has `2021-04-28T20:54:09.000+0000`.
                doc["last_modified_date"] = json!(xsd_datetime(u.last_password_change));
            }
            formats::identity_response(&doc, fmt)
        }
        // UNVERIFIED: Salesforce's identity error codes other than Bad_OAuth_Token.
        _ => (StatusCode::NOT_FOUND, "Bad_Id").into_response(),
    }
}

/// `GET|POST /services/oauth2/userinfo`.
pub async fn userinfo(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let mut inner = org.lock();
    let session = presented_token(&headers, &uri)
        .and_then(|t| sessions::validate(&mut inner, &t, peer.ip()).ok());
    let Some(s) = session else {
        inner.stats.invalid_session_responses += 1;
        return bad_token();
    };
    let Some(ui) = inner.user_by_id(&s.user_id) else {
        return bad_token();
    };
    let u = &inner.users[ui];
    let base = &org.base_url;
    let mut urls = urls(base, &org.org_id, &u.id, "{version}");
    if let Some(o) = urls.as_object_mut() {
        for k in [
            "tooling_soap",
            "tooling_rest",
            "feed_elements",
            "custom_domain",
        ] {
            o.remove(k);
        }
    }
    let doc = json!({
        "sub": org.identity_url(&u.id),
        "user_id": u.id,
        "organization_id": org.org_id,
        "preferred_username": u.username,
        "nickname": u.username.split('@').next().unwrap_or_default(),
        "name": u.full_name(),
        "email": u.email,
        "email_verified": true,
        "given_name": u.first_name,
        "family_name": u.last_name,
        "zoneinfo": "GMT",
        "photos": photos(base),
        "profile": format!("{base}/{}", u.id),
        "picture": format!("{base}/profilephoto/005/F"),
        "address": {"country": "US"},
        "urls": urls,
        "active": u.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": ids::sf_datetime(u.last_password_change),
        "is_app_installed": true,
    });
    wire::json(StatusCode::OK, &doc)
}
