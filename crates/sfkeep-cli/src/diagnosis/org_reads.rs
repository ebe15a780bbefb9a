//! Doctor's reads of the org's diagnosis objects (docs/salesforce-wire.md §9) with a token
//! that works, all at once: SOQL on User, UserLogin, LoginHistory, AuthSession, OauthToken
//! and SetupAuditTrail, SOAP `getUserInfo` for `sessionSecondsValid` (§5.2), and, for a token
//! doctor just obtained, its introspection (`exp − iat`, §3.1).
//!
//! Reads never heal: a refused read is a fact about the session (not valid for the API, the
//! daily limit used up, the API disabled), never a reason to refresh. Every statement doctor
//! makes about the org comes from a read that succeeded; the others are named as unread.

use serde_json::Value;
use sfkeep::diagnose::Cause;
use sfkeep::diagnose::api_error::ApiError;
use sfkeep::diagnose::evidence::{
    AuditRow, LoginRow, OauthTokenRow, OrgReads, UserFacts, parse_sf_datetime,
};

/// Where and as whom to read.
pub struct Reader<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// The instance.
    pub instance_url: String,
    /// The working access token (or SOAP session id).
    pub access_token: sfkeep::secret::AccessToken,
    /// `vXX.X` without the `v`.
    pub api_version: String,
    /// The integration user's id.
    pub user_id: String,
}

/// Everything the reads found.
#[derive(Default)]
pub struct OrgRead {
    /// User and UserLogin.
    pub user: Option<UserFacts>,
    /// LoginHistory.
    pub login_history: Vec<LoginRow>,
    /// SetupAuditTrail.
    pub setup_audit: Vec<AuditRow>,
    /// Live AuthSession rows.
    pub auth_sessions: Option<usize>,
    /// OauthToken rows.
    pub approvals: Option<Vec<OauthTokenRow>>,
    /// Which reads succeeded.
    pub reads: OrgReads,
    /// Reads refused in a way that says something about the session.
    pub failures: Vec<(Cause, String)>,
    /// `API_DISABLED_FOR_ORG` / `API_CURRENTLY_DISABLED`: the server's words.
    pub api_disabled: Option<String>,
    /// `AuthSession.NumSecondsValid` of the session doctor read with.
    pub current_session_seconds: Option<u64>,
    /// SOAP `sessionSecondsValid`.
    pub soap_session_seconds: Option<u64>,
    /// One line per read, for the person.
    pub notes: Vec<String>,
}

/// A read that did not succeed.
struct Refused {
    object: String,
    error: Result<ApiError, String>,
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

impl Reader<'_> {
    /// Runs one SOQL query through REST, every page (a few at most for these objects).
    async fn soql(&self, object: &str, q: String) -> Result<Vec<Value>, Refused> {
        let refused = |error| Refused {
            object: object.to_owned(),
            error,
        };
        let base = self.instance_url.trim_end_matches('/');
        let mut url = format!("{base}/services/data/v{}/query", self.api_version);
        let mut query = Some(q);
        let mut rows = Vec::new();
        for _page in 0..10 {
            let mut req = self
                .http
                .get(&url)
                .bearer_auth(self.access_token.expose_secret());
            if let Some(q) = query.take() {
                req = req.query(&[("q", q)]);
            }
            let resp = super::probe::send_retrying(req)
                .await
                .map_err(|e| refused(Err(format!("GET {url} failed: {e}"))))?;
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| refused(Err(format!("reading the answer failed: {e}"))))?;
            if status != 200 {
                return Err(refused(Ok(ApiError::from_response(status, &body, None))));
            }
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| refused(Err(format!("the answer is not JSON ({e})"))))?;
            let Some(records) = v.get("records").and_then(Value::as_array) else {
                return Err(refused(Err("the answer has no records array".into())));
            };
            rows.extend(records.iter().cloned());
            match s(&v, "nextRecordsUrl") {
                Some(next) if v.get("done") == Some(&Value::Bool(false)) => {
                    url = format!("{base}{next}");
                }
                _ => return Ok(rows),
            }
        }
        Ok(rows)
    }

    /// SOAP `getUserInfo`: the session timeout in seconds (`sessionSecondsValid`).
    async fn soap_session_seconds(&self) -> Result<u64, String> {
        let url = format!(
            "{}/services/Soap/u/{}",
            self.instance_url.trim_end_matches('/'),
            self.api_version
        );
        let envelope = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader><urn:sessionId>{}</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:getUserInfo/></soapenv:Body></soapenv:Envelope>"#,
            xml_escape(self.access_token.expose_secret())
        );
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
            .header("SOAPAction", "getUserInfo")
            .body(envelope)
            .send()
            .await
            .map_err(|e| format!("POST {url} failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(64 * 1024).collect();
        if status != 200 {
            let e = ApiError::read(
                sfkeep::diagnose::api_error::Api::Soap,
                status,
                body.as_bytes(),
                None,
            );
            return Err(format!("getUserInfo answered {e}"));
        }
        element(&body, "sessionSecondsValid")
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| "getUserInfo's answer has no sessionSecondsValid".to_owned())
    }
}

fn xml_escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text of the first `<name>` element, whatever its prefix (the partner API answers
/// unprefixed, docs/salesforce-wire.md §5.2).
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = xml.find(&format!("{name}>"))?;
    let start = open + name.len() + 1;
    let end = xml[start..].find("</")? + start;
    Some(&xml[start..end])
}

/// Reads everything at once.
pub async fn read(r: &Reader<'_>) -> OrgRead {
    let uid = quote(&r.user_id);
    let (user, login, history, sessions, tokens, audit, soap) = tokio::join!(
        r.soql(
            "User",
            format!("SELECT Id, Username, IsActive, LastPasswordChangeDate, LastLoginDate FROM User WHERE Id = '{uid}'")
        ),
        r.soql(
            "UserLogin",
            format!("SELECT Id, IsFrozen, LastModifiedDate FROM UserLogin WHERE UserId = '{uid}'")
        ),
        r.soql(
            "LoginHistory",
            format!("SELECT LoginTime, SourceIp, Status, LoginType, Application FROM LoginHistory WHERE UserId = '{uid}' ORDER BY LoginTime DESC LIMIT 50")
        ),
        r.soql(
            "AuthSession",
            format!("SELECT Id, SourceIp, CreatedDate, LastModifiedDate, NumSecondsValid, IsCurrent FROM AuthSession WHERE UsersId = '{uid}'")
        ),
        r.soql(
            "OauthToken",
            format!("SELECT AppName, UseCount, LastUsedDate, CreatedDate FROM OauthToken WHERE UserId = '{uid}'")
        ),
        r.soql(
            "SetupAuditTrail",
            "SELECT Action, Display, Section, CreatedDate FROM SetupAuditTrail ORDER BY CreatedDate DESC LIMIT 100".to_owned()
        ),
        r.soap_session_seconds(),
    );
    let mut out = OrgRead::default();
    let read = |res: Result<Vec<Value>, Refused>, out: &mut OrgRead| match res {
        Ok(rows) => Some(rows),
        Err(refused) => {
            note_refusal(refused, out);
            None
        }
    };
    let user = read(user, &mut out);
    let login = read(login, &mut out);
    let history = read(history, &mut out);
    let sessions = read(sessions, &mut out);
    let tokens = read(tokens, &mut out);
    let audit = read(audit, &mut out);
    out.reads = OrgReads {
        user: user.is_some(),
        user_login: login.is_some(),
        login_history: history.is_some(),
        auth_session: sessions.is_some(),
        oauth_token: tokens.is_some(),
        setup_audit: audit.is_some(),
    };
    if user.is_some() || login.is_some() {
        let u = user.as_ref().and_then(|r| r.first());
        let l = login.as_ref().and_then(|r| r.first());
        out.user = Some(UserFacts {
            is_active: u
                .and_then(|u| u.get("IsActive"))
                .and_then(Value::as_bool)
                .unwrap_or(true),
            is_frozen: l
                .and_then(|l| l.get("IsFrozen"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            last_password_change: u
                .and_then(|u| s(u, "LastPasswordChangeDate"))
                .and_then(parse_sf_datetime),
        });
    }
    out.login_history = history
        .iter()
        .flatten()
        .filter_map(|r| {
            Some(LoginRow {
                at: parse_sf_datetime(s(r, "LoginTime")?)?,
                source_ip: s(r, "SourceIp").unwrap_or("").to_owned(),
                status: s(r, "Status").unwrap_or("").to_owned(),
            })
        })
        .collect();
    if let Some(rows) = &sessions {
        out.auth_sessions = Some(rows.len());
        out.current_session_seconds = rows
            .iter()
            .find(|r| r.get("IsCurrent").and_then(Value::as_bool) == Some(true))
            .and_then(|r| r.get("NumSecondsValid"))
            .and_then(Value::as_u64);
    }
    out.approvals = tokens.map(|rows| {
        rows.iter()
            .filter_map(|r| {
                Some(OauthTokenRow {
                    app: s(r, "AppName").unwrap_or("").to_owned(),
                    created: parse_sf_datetime(s(r, "CreatedDate")?)?,
                    last_used: s(r, "LastUsedDate").and_then(parse_sf_datetime),
                })
            })
            .collect()
    });
    out.setup_audit = audit
        .iter()
        .flatten()
        .filter_map(|r| {
            Some(AuditRow {
                at: parse_sf_datetime(s(r, "CreatedDate")?)?,
                action: s(r, "Action").unwrap_or("").to_owned(),
                display: s(r, "Display").unwrap_or("").to_owned(),
            })
        })
        .collect();
    match soap {
        Ok(secs) => out.soap_session_seconds = Some(secs),
        Err(e) => out.notes.push(format!("SOAP getUserInfo: {e}")),
    }
    let read_ok: Vec<&str> = [
        ("User", out.reads.user),
        ("UserLogin", out.reads.user_login),
        ("LoginHistory", out.reads.login_history),
        ("AuthSession", out.reads.auth_session),
        ("OauthToken", out.reads.oauth_token),
        ("SetupAuditTrail", out.reads.setup_audit),
    ]
    .into_iter()
    .filter(|(_, ok)| *ok)
    .map(|(n, _)| n)
    .collect();
    out.notes.insert(
        0,
        if read_ok.is_empty() {
            format!(
                "the org's diagnosis objects could not be read as user {}",
                r.user_id
            )
        } else {
            format!("read the org as user {}: {}", r.user_id, read_ok.join(", "))
        },
    );
    out
}

/// A refused read: a note always; a fact about the session when the refusal is one.
fn note_refusal(r: Refused, out: &mut OrgRead) {
    let Refused { object, error } = r;
    match error {
        Err(why) => out
            .notes
            .push(format!("SOQL on {object} could not be read: {why}")),
        Ok(e) => {
            out.notes.push(format!("SOQL on {object} was refused: {e}"));
            if matches!(
                e.error_code.as_str(),
                "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED"
            ) {
                out.api_disabled.get_or_insert_with(|| {
                    format!("SOQL on {object}: {} {}", e.error_code, e.message)
                });
                return;
            }
            if let Some(c @ (Cause::SessionNotValidForApi | Cause::RequestLimitExceeded)) = e.cause
                && !out.failures.iter().any(|(k, _)| *k == c)
            {
                out.failures.push((
                    c,
                    format!(
                        "SOQL on {object}: HTTP {} {}: {}",
                        e.status, e.error_code, e.message
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_reads_prefixed_and_unprefixed_tags() {
        assert_eq!(
            element(
                "<userInfo><sessionSecondsValid>900</sessionSecondsValid>",
                "sessionSecondsValid"
            ),
            Some("900")
        );
        assert_eq!(
            element(
                "<sf:sessionSecondsValid>7200</sf:sessionSecondsValid>",
                "sessionSecondsValid"
            ),
            Some("7200")
        );
        assert_eq!(element("<a>1</a>", "sessionSecondsValid"), None);
    }
}
