//! The offline classifier behind `sfkeep doctor --error`: a pasted Salesforce error (an OAuth
//! token error, a REST error array, a SOAP fault, a Bulk 1.0 XML error, the identity URL's
//! `Bad_OAuth_Token`, a LoginHistory status, or a log line containing one of them) becomes a
//! [`Diagnosis`] without any network access.
//!
//! One error body rarely names a single cause (a `401 INVALID_SESSION_ID` is what *every* kind
//! of session death looks like), so the result ranks the candidates, with the most common first,
//! and says what `sfkeep doctor` against the org would check to tell them apart.

use serde_json::Value;

use super::diagnosis::{Diagnosis, DiagnosisCause as D, Finding};
use super::soap_fault::SoapFault;

/// What was found in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recognized {
    /// A token-endpoint error: `{"error","error_description"}` or `error: description`.
    OAuth {
        /// The `error` code.
        error: String,
        /// The `error_description`.
        description: String,
    },
    /// A REST / Bulk 2.0 error (`[{"message","errorCode"}]` or `CODE: message`).
    Rest {
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
    },
    /// A SOAP fault.
    SoapFault {
        /// The fault code without its namespace prefix.
        code: String,
        /// The fault string.
        message: String,
    },
    /// A Bulk API 1.0 error (`<error><exceptionCode>…`).
    Bulk1 {
        /// `exceptionCode`.
        code: String,
        /// `exceptionMessage`.
        message: String,
    },
    /// The identity URL's plain-text `403 Bad_OAuth_Token`.
    BadOAuthToken,
    /// A LoginHistory `Status` value (e.g. `User Is Frozen`).
    LoginStatus(String),
}

impl Recognized {
    /// One line describing what was found, for evidence. Anything credential-like in the
    /// pasted text (a session id in a fault string, a token in a log line) is redacted.
    pub fn describe(&self) -> String {
        crate::redact::redact_secrets(&self.describe_raw())
    }

    fn describe_raw(&self) -> String {
        match self {
            Recognized::OAuth { error, description } => {
                format!("OAuth token error `{error}`: \"{description}\"")
            }
            Recognized::Rest { code, message } => {
                format!("REST API error `{code}`: \"{message}\"")
            }
            Recognized::SoapFault { code, message } => {
                format!("SOAP fault `{code}`: \"{}\"", first_line(message))
            }
            Recognized::Bulk1 { code, message } => {
                format!("Bulk API 1.0 error `{code}`: \"{message}\"")
            }
            Recognized::BadOAuthToken => "identity URL answer `Bad_OAuth_Token`".to_owned(),
            Recognized::LoginStatus(s) => format!("LoginHistory status \"{s}\""),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

const OAUTH_CODES: &[&str] = &[
    "invalid_grant",
    "invalid_client_id",
    "invalid_client_credentials",
    "invalid_client",
    "invalid_request",
    "unsupported_grant_type",
    "unsupported_response_type",
    "unsupported_token_type",
    "inactive_user",
    "inactive_org",
    "rate_limit_exceeded",
    "invalid_scope",
    "authorization_pending",
    "invalid_token",
    "access_denied",
];

/// Codes that appear as `CODE: message` in logs (REST `errorCode`, SOAP `ExceptionCode`).
const API_CODES: &[&str] = &[
    "INVALID_SESSION_ID",
    "INVALID_AUTH_HEADER",
    "REQUEST_LIMIT_EXCEEDED",
    "API_DISABLED_FOR_ORG",
    "API_CURRENTLY_DISABLED",
    "INVALID_LOGIN",
    "LOGIN_DURING_RESTRICTED_TIME",
    "LOGIN_DURING_RESTRICTED_DOMAIN",
    "LOGIN_MUST_USE_SECURITY_TOKEN",
    "LOGIN_CHALLENGE_ISSUED",
    "LOGIN_CHALLENGE_PENDING",
    "LOGIN_RATE_EXCEEDED",
    "PASSWORD_LOCKOUT",
    "ORG_LOCKED",
    "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
    "UNSUPPORTED_API_VERSION",
    "INVALID_OPERATION",
    "SERVER_UNAVAILABLE",
    "UNKNOWN_EXCEPTION",
    "INVALID_FIELD",
    "REQUIRED_FIELD_MISSING",
    "MALFORMED_QUERY",
    "INVALID_TYPE",
    "NOT_FOUND",
    "InvalidSessionId",
    "InvalidVersion",
];

/// Descriptions that identify an OAuth error even without its code.
const OAUTH_DESCRIPTIONS: &[(&str, &str)] = &[
    ("expired access/refresh token", "invalid_grant"),
    ("inactive user", "invalid_grant"),
    ("ip restricted or invalid login hours", "invalid_grant"),
    ("ip restricted", "invalid_grant"),
    ("user hasn't approved this consumer", "invalid_grant"),
    ("authentication failure", "invalid_grant"),
    ("invalid assertion", "invalid_grant"),
    ("audience validation failed", "invalid_grant"),
    ("expired authorization code", "invalid_grant"),
    ("invalid code verifier", "invalid_grant"),
    ("activation secret invalid", "invalid_grant"),
    ("jti already in use", "invalid_request"),
    ("client identifier invalid", "invalid_client_id"),
    ("invalid client credentials", "invalid_client"),
    ("grant type not supported", "unsupported_grant_type"),
];

/// Messages that identify a REST error even without its code.
const REST_MESSAGES: &[(&str, &str)] = &[
    (
        "this session is not valid for use with the rest api",
        "INVALID_SESSION_ID",
    ),
    (
        "connected app is not attached to agent",
        "INVALID_SESSION_ID",
    ),
    ("session expired or invalid", "INVALID_SESSION_ID"),
    ("invalid session id", "INVALID_SESSION_ID"),
    ("totalrequests limit exceeded", "REQUEST_LIMIT_EXCEEDED"),
    ("rest api is not enabled", "API_DISABLED_FOR_ORG"),
];

/// LoginHistory statuses (`docs/salesforce-wire.md` §9).
const LOGIN_STATUSES: &[&str] = &[
    "User Is Frozen",
    "User is Inactive",
    "Restricted IP",
    "Login Rate Exceeded",
    "Invalid Password",
    "Password Lockout",
    "Failed: API security token required",
];

/// Finds a Salesforce error in `text`; `None` when there is none.
pub fn recognize_error_text(text: &str) -> Option<Recognized> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    recognize_xml(text)
        .or_else(|| recognize_json(text, 0))
        .or_else(|| recognize_urlencoded(text))
        .or_else(|| recognize_plain(text))
}

fn recognize_xml(text: &str) -> Option<Recognized> {
    if !text.contains('<') {
        return None;
    }
    let fault = SoapFault::read(text)?;
    if let Some(code) = fault.fault_code() {
        let message = fault.message().unwrap_or_default();
        let message = message
            .strip_prefix(code)
            .and_then(|m| m.strip_prefix(": "))
            .unwrap_or(&message)
            .to_owned();
        return Some(Recognized::SoapFault {
            code: code.to_owned(),
            message,
        });
    }
    let code = fault.exception_code()?.to_owned();
    let message = fault.exception_message().unwrap_or_default().into_owned();
    // SOAP detail without the fault envelope, or Bulk 1.0's `<error>`.
    if code.chars().any(|c| c.is_ascii_lowercase()) {
        return Some(Recognized::Bulk1 { code, message });
    }
    Some(Recognized::SoapFault { code, message })
}

fn from_value(v: &Value, depth: u8) -> Option<Recognized> {
    match v {
        Value::Array(items) => items.iter().find_map(|i| from_value(i, depth)),
        Value::Object(m) => {
            let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
            if let Some(code) = s("errorCode") {
                return Some(Recognized::Rest {
                    code,
                    message: s("message").unwrap_or_default(),
                });
            }
            if let Some(code) = s("exceptionCode") {
                return Some(Recognized::Bulk1 {
                    code,
                    message: s("exceptionMessage").unwrap_or_default(),
                });
            }
            if let Some(error) = s("error") {
                let description = s("error_description");
                if description.is_some() || OAUTH_CODES.contains(&error.as_str()) {
                    return Some(Recognized::OAuth {
                        error,
                        description: description.unwrap_or_default(),
                    });
                }
            }
            if depth < 2 {
                // A structured log line: the body may sit, as a string, in one of its fields.
                for val in m.values() {
                    let found = match val {
                        Value::String(t) => recognize_inner(t, depth + 1),
                        other => from_value(other, depth + 1),
                    };
                    if found.is_some() {
                        return found;
                    }
                }
            }
            None
        }
        _ => None,
    }
}

fn recognize_inner(text: &str, depth: u8) -> Option<Recognized> {
    recognize_xml(text)
        .or_else(|| recognize_json(text, depth))
        .or_else(|| recognize_plain(text))
}

fn recognize_json(text: &str, depth: u8) -> Option<Recognized> {
    let mut tried = 0;
    for (i, c) in text.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        tried += 1;
        if tried > 200 {
            break;
        }
        let mut it = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        if let Some(Ok(v)) = it.next()
            && let Some(r) = from_value(&v, depth)
        {
            return Some(r);
        }
    }
    None
}

/// A form-encoded value (`+` is a space) decoded; bad UTF-8 becomes U+FFFD.
fn form_value(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn recognize_urlencoded(text: &str) -> Option<Recognized> {
    let start = text.find("error=")?;
    let tail = &text[start..];
    let tail = tail.split_whitespace().next().unwrap_or(tail);
    let mut error = None;
    let mut description = String::new();
    for pair in tail.split('&') {
        if let Some(v) = pair.strip_prefix("error=") {
            error = Some(form_value(v));
        } else if let Some(v) = pair.strip_prefix("error_description=") {
            description = form_value(v);
        }
    }
    let error = error?;
    (OAUTH_CODES.contains(&error.as_str()) || !description.is_empty())
        .then_some(Recognized::OAuth { error, description })
}

fn rest_of_line(text: &str, from: usize) -> String {
    let rest = &text[from..];
    let end = rest.find(['\n', '"', '\'', '}', ']']).unwrap_or(rest.len());
    rest[..end].trim().trim_end_matches(['.', ',']).to_owned()
}

fn is_word_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !before.is_some_and(word) && !after.is_some_and(word)
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        if is_word_boundary(text, at, at + word.len()) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn recognize_plain(text: &str) -> Option<Recognized> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("bad_oauth_token") {
        return Some(Recognized::BadOAuthToken);
    }
    // `invalid_grant: expired access/refresh token` (restforce and many loggers).
    for code in OAUTH_CODES {
        if let Some(at) = find_word(text, code) {
            let after = at + code.len();
            let rest = text[after..].trim_start();
            let description = match rest.strip_prefix(':').or_else(|| rest.strip_prefix(" -")) {
                Some(d) => {
                    let off = text.len() - d.len();
                    rest_of_line(text, off)
                }
                None => OAUTH_DESCRIPTIONS
                    .iter()
                    .find(|(d, _)| lower.contains(d))
                    .map(|(d, _)| (*d).to_owned())
                    .unwrap_or_default(),
            };
            return Some(Recognized::OAuth {
                error: (*code).to_owned(),
                description,
            });
        }
    }
    // `INVALID_SESSION_ID: Session expired or invalid`.
    for code in API_CODES {
        if let Some(at) = find_word(text, code) {
            let rest = text[at + code.len()..].trim_start();
            let message = match rest.strip_prefix(':') {
                Some(m) => rest_of_line(text, text.len() - m.len()),
                None => REST_MESSAGES
                    .iter()
                    .find(|(m, c)| c == code && lower.contains(m))
                    .map(|(m, _)| (*m).to_owned())
                    .unwrap_or_default(),
            };
            return Some(if code.chars().any(|c| c.is_ascii_lowercase()) {
                Recognized::Bulk1 {
                    code: (*code).to_owned(),
                    message,
                }
            } else {
                Recognized::Rest {
                    code: (*code).to_owned(),
                    message,
                }
            });
        }
    }
    for (d, code) in OAUTH_DESCRIPTIONS {
        if lower.contains(d) {
            return Some(Recognized::OAuth {
                error: (*code).to_owned(),
                description: (*d).to_owned(),
            });
        }
    }
    for (m, code) in REST_MESSAGES {
        if lower.contains(m) {
            return Some(Recognized::Rest {
                code: (*code).to_owned(),
                message: (*m).to_owned(),
            });
        }
    }
    for s in LOGIN_STATUSES {
        if lower.contains(&s.to_ascii_lowercase()) {
            return Some(Recognized::LoginStatus((*s).to_owned()));
        }
    }
    None
}

/// The diagnosis for text that holds no Salesforce error.
pub fn not_an_error() -> Diagnosis {
    Diagnosis {
        verdict: D::Unknown,
        recoverable: false,
        causes: vec![
            Finding::new(
                D::Unknown,
                0.0,
                vec![
                    "this does not look like a Salesforce error: no OAuth error, REST error array, SOAP fault, Bulk API error or Bad_OAuth_Token was found in the text".into(),
                ],
            )
            .with_fix(
                "Paste the response body Salesforce sent (or the log line that contains it), or run `sfkeep doctor` without --error to examine the org.",
            ),
        ],
    }
}

/// Classifies a pasted error offline. Text that holds no Salesforce error gets
/// [`not_an_error`] (check with [`recognize_error_text`] first to tell the two apart).
pub fn classify_error_text(text: &str) -> Diagnosis {
    match recognize_error_text(text) {
        Some(r) => classify_recognized(&r),
        None => not_an_error(),
    }
}

/// The candidates when an access token stopped working and nothing else is known. Offline,
/// one such answer cannot tell them apart (every session death looks the same on the wire), so
/// the verdict says so, and each candidate says what would confirm it.
fn session_death(what: &str) -> Vec<Finding> {
    let candidate =
        |cause: D, conf: f64, check: &str| Finding::new(cause, conf, vec![check.to_owned()]);
    vec![
        Finding::new(
            D::Unknown,
            0.5,
            vec![
                what.to_owned(),
                "offline this cannot be known: a timeout, a logout, a password change, a revoke, an IP move, a freeze and a deactivation all end a session with this same answer".to_owned(),
            ],
        )
        .with_fix(
            "Run `sfkeep doctor` without --error against the org to tell the causes apart. A new access token (`sfkeep recover`; the sfkeep library and proxy get one by themselves) fixes the common ones.",
        ),
        candidate(
            D::SessionTimeout,
            0.35,
            "the commonest: the session was idle longer than the session timeout (doctor compares the last successful call with the org's timeout)",
        ),
        candidate(
            D::LoggedOutElsewhere,
            0.2,
            "a logout of the integration user elsewhere ends every session of that user (doctor: the session died well within the timeout and nothing else shows)",
        ),
        candidate(
            D::PasswordChanged,
            0.15,
            "a password change ends the user's sessions (doctor: User.LastPasswordChangeDate after the last use)",
        ),
        candidate(
            D::AppTokensRevoked,
            0.1,
            "an admin revoking the app's tokens ends its sessions (doctor: the refresh token died too; SetupAuditTrail shows the revoke)",
        ),
        candidate(
            D::IpRestricted,
            0.1,
            "with IP-locked sessions, a new source address ends the session (doctor: the source address changed since the last success)",
        ),
        candidate(
            D::UserFrozen,
            0.05,
            "freezing the user ends its sessions (doctor: UserLogin.IsFrozen, SetupAuditTrail)",
        ),
        candidate(
            D::UserDeactivated,
            0.05,
            "deactivating the user ends its sessions (doctor: User.IsActive, SetupAuditTrail)",
        ),
    ]
}

fn config_error(what: String, detail: &str, fix: &str) -> (Vec<Finding>, bool) {
    (
        vec![Finding::new(D::Unknown, 0.6, vec![what, detail.to_owned()]).with_fix(fix)],
        false,
    )
}

fn not_auth(what: String, detail: &str, fix: &str) -> (Vec<Finding>, bool) {
    (
        vec![
            Finding::new(
                D::Healthy,
                0.6,
                vec![
                    what,
                    format!("not an authentication failure: {detail}; the session itself is fine"),
                ],
            )
            .with_fix(fix),
        ],
        true,
    )
}

/// Classifies what [`recognize_error_text`] found.
pub fn classify_recognized(r: &Recognized) -> Diagnosis {
    let what = r.describe();
    let (findings, recoverable) = match r {
        Recognized::OAuth { error, description } => classify_oauth(what, error, description),
        Recognized::Rest { code, message } => classify_code(what, code, message),
        Recognized::SoapFault { code, message } => classify_code(what, code, message),
        Recognized::Bulk1 { code, message } => classify_code(what, code, message),
        Recognized::BadOAuthToken => (
            session_death(&format!(
                "{what}: the identity URL's way of saying the access token is invalid or expired"
            )),
            true,
        ),
        Recognized::LoginStatus(s) => classify_login_status(what, s),
    };
    let mut findings = findings;
    if !recoverable {
        // A refused login, not a dead session: a new password is needed before a recover.
        for f in &mut findings {
            if f.cause == D::PasswordChanged && f.fix == D::PasswordChanged.fix() {
                f.fix = super::diagnosis::NEW_PASSWORD_FIX.to_owned();
            }
        }
    }
    Diagnosis::ranked(findings, Some(recoverable))
}

fn classify_login_status(what: String, status: &str) -> (Vec<Finding>, bool) {
    let one = |c: D, conf: f64, why: &str| {
        (
            vec![Finding::new(c, conf, vec![what.clone(), why.to_owned()])],
            false,
        )
    };
    match status {
        "User Is Frozen" => one(
            D::UserFrozen,
            0.95,
            "the login was refused because the user is frozen",
        ),
        "User is Inactive" => one(
            D::UserDeactivated,
            0.95,
            "the login was refused because the user is deactivated",
        ),
        "Restricted IP" => one(
            D::IpRestricted,
            0.95,
            "the login came from outside the allowed IP ranges",
        ),
        "Login Rate Exceeded" => one(
            D::RateLimited,
            0.95,
            "the user's login rate limit (about 3,600 per hour) is used up",
        ),
        "Password Lockout" => one(
            D::UserFrozen,
            0.5,
            "the user is locked out after failed logins; an admin unlocks it in Setup > Users",
        ),
        _ => (
            vec![
                Finding::new(
                    D::WrongPassword,
                    0.6,
                    vec![
                        what.clone(),
                        "a login with a wrong password or a missing or old security token".to_owned(),
                    ],
                ),
                Finding::new(
                    D::PasswordChanged,
                    0.3,
                    vec![
                        what.clone(),
                        "a password change resets the security token too, so the stored pair stops working".to_owned(),
                    ],
                ),
            ],
            false,
        ),
    }
}

/// An OAuth error answer: `invalid_grant` told apart by its description (who or what refused
/// the login, then what was wrong with the request), the other codes by themselves.
fn classify_oauth(what: String, error: &str, description: &str) -> (Vec<Finding>, bool) {
    let d = description.to_ascii_lowercase();
    let found = match error {
        "invalid_grant" => refused_grant(&what, &d).or_else(|| bad_grant_request(&what, &d)),
        "invalid_request" if d.contains("jti") => Some(config_error(
            what.clone(),
            "a JWT `jti` was used twice",
            "A client bug: use a fresh `jti` per assertion.",
        )),
        _ => other_oauth_error(&what, error),
    };
    found.unwrap_or_else(|| {
        let unknown = Finding::new(
            D::Unknown,
            0.3,
            vec![what, "an OAuth error sfkeep does not know".to_owned()],
        );
        (vec![unknown], false)
    })
}

/// `invalid_grant` because of who is logging in or from where: a dead refresh token, an
/// inactive user, an IP or login-hours restriction, an unapproved user, a refused password.
/// `d` is the lowercased description.
fn refused_grant(what: &str, d: &str) -> Option<(Vec<Finding>, bool)> {
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    Some(match () {
        _ if d.contains("expired access/refresh token") => (
            vec![
                Finding::new(
                    D::AppTokensRevoked,
                    0.4,
                    ev(
                        "the refresh token is dead: Salesforce says this when an admin revokes the app's tokens (the most common reason)",
                    ),
                ),
                Finding::new(
                    D::RefreshTokenExpiredByPolicy,
                    0.3,
                    ev(
                        "the same answer comes when the app's refresh-token policy expired the token (idle or absolute TTL)",
                    ),
                ),
                Finding::new(
                    D::RefreshTokenReused,
                    0.2,
                    ev(
                        "with refresh-token rotation, reusing a rotated-out token revokes the whole family and gets this answer",
                    ),
                ),
                Finding::new(
                    D::UserDeactivated,
                    0.05,
                    ev("removing the user's sessions or access also kills refresh tokens"),
                ),
            ],
            false,
        ),
        _ if d.contains("inactive user") => (
            vec![Finding::new(
                D::UserDeactivated,
                0.95,
                ev("Salesforce refuses logins of a deactivated user this way"),
            )],
            false,
        ),
        _ if d.contains("ip restricted") => (
            vec![Finding::new(
                D::IpRestricted,
                0.95,
                ev(if d.contains("login hours") {
                    "the login came from outside the Login IP Ranges or outside the profile's login hours"
                } else {
                    "the login came from outside the allowed IP ranges (profile Login IP Ranges or the app's IP policy)"
                }),
            )],
            false,
        ),
        _ if d.contains("hasn't approved") || d.contains("has not approved") => (
            vec![Finding::new(
                D::AppNotApproved,
                0.95,
                ev(
                    "the JWT bearer flow needs the user pre-authorized for the app (admin-approved users, with the profile or permission set added)",
                ),
            )],
            false,
        ),
        _ if d.contains("authentication failure") => authentication_failure(what, d),
        _ => return None,
    })
}

/// `invalid_grant` "authentication failure": a refused password when the description says so,
/// else a password, a frozen user or a blocked flow, which only the grant that was used tells
/// apart. `d` is the lowercased description.
fn authentication_failure(what: &str, d: &str) -> (Vec<Finding>, bool) {
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    if d.contains("invalid password") {
        (
            vec![
                Finding::new(
                    D::WrongPassword,
                    0.6,
                    ev(
                        "the password (or password + security token) was refused: most often a mistyped password or a missing or old security token",
                    ),
                ),
                Finding::new(
                    D::PasswordChanged,
                    0.3,
                    ev(
                        "a password change also resets the security token, so the stored pair stops working",
                    ),
                ),
            ],
            false,
        )
    } else {
        (
            vec![
                Finding::new(D::WrongPassword, 0.4, ev("for the password grant this is a wrong password or security token; a password change resets the security token too"))
                    .with_fix("If the refused login sends a password (the password grant, SOAP login()), put the new password and its new security token in the profile's secrets, then run `sfkeep recover`. If it was a refresh-token or JWT login, the password is not the problem: an admin must unfreeze the user, or run `sfkeep doctor` against the org to see why."),
                Finding::new(D::UserFrozen, 0.3, ev("Salesforce refuses a frozen user's logins as an authentication failure, for every grant")),
                Finding::new(D::Unknown, 0.2, ev("also: the username-password flow is blocked in the org (the default since Summer '23), or the JWT certificate does not match the app")),
            ],
            false,
        )
    }
}

/// `invalid_grant` because of what the request carried: a JWT assertion, its audience or
/// clock, an authorization code, a PKCE verifier, a device secret, or a request already in
/// flight. `d` is the lowercased description.
fn bad_grant_request(what: &str, d: &str) -> Option<(Vec<Finding>, bool)> {
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    Some(match () {
        _ if d.contains("invalid assertion") => (
            vec![
                Finding::new(D::Unknown, 0.55, ev("the JWT assertion was rejected: a signing key that does not match the app's certificate, a wrong `sub`, or a malformed token"))
                    .with_fix("Check that the JWT signing key matches the certificate uploaded to the connected app, and that `sub` is the integration user's username."),
                Finding::new(D::ClockSkew, 0.25, ev("an `exp` the server thinks is too far ahead or already past also makes an assertion invalid")),
            ],
            false,
        ),
        _ if d.contains("audience") => config_error(
            what.to_owned(),
            "the JWT `aud` is not the login host",
            "Set the JWT audience to https://login.salesforce.com, https://test.salesforce.com or the community URL.",
        ),
        _ if d.contains("expired authorization code") => (
            vec![
                Finding::new(D::ClockSkew, 0.45, ev("for the JWT bearer flow this means the assertion's `exp` had already passed on the server's clock: the local clock is behind")),
                Finding::new(D::Unknown, 0.4, ev("for the web-server flow, the authorization code was reused or is older than a few minutes"))
                    .with_fix("Start the authorization-code login again (codes are single-use and short-lived); for JWT, check the machine's clock."),
            ],
            false,
        ),
        _ if d.contains("code verifier") => config_error(what.to_owned(), "the PKCE code_verifier does not match the code_challenge", "A client bug: send the same verifier whose challenge was used to authorize."),
        _ if d.contains("activation secret") => config_error(what.to_owned(), "the device activation / verification secret is invalid", "Run the device or verification login again."),
        _ if d.contains("already being processed") => (
            vec![Finding::new(D::RateLimited, 0.5, ev("another token request for the same credential is in flight; retry in a moment"))
                .with_fix("Retry shortly; share one token store between processes so only one refreshes.")],
            true,
        ),
        _ => return None,
    })
}

/// The OAuth error codes other than `invalid_grant` (and a `jti` reuse).
fn other_oauth_error(what: &str, error: &str) -> Option<(Vec<Finding>, bool)> {
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    Some(match error {
        "inactive_user" => (
            vec![Finding::new(D::UserDeactivated, 0.95, ev("the documented code for an inactive user"))],
            false,
        ),
        "inactive_org" => (
            vec![Finding::new(D::ApiDisabled, 0.7, ev("the org is locked or suspended, so no API access is possible"))
                .with_fix("The org is locked or suspended: contact the org's admin or Salesforce support.")],
            false,
        ),
        "invalid_client_id" => (
            vec![Finding::new(D::InvalidClient, 0.9, ev("the consumer key is unknown (or a new connected app has not propagated yet, 2-10 minutes)"))
                .with_fix("Check the profile's client_id against the connected app's consumer key; wait 10 minutes after creating an app.")],
            false,
        ),
        "invalid_client" | "invalid_client_credentials" => (
            vec![Finding::new(D::InvalidClient, 0.9, ev("the consumer secret is wrong (or does not belong to this consumer key)"))
                .with_fix("Check the profile's client_secret against the connected app's consumer secret (where the profile reads it from: a file or an environment variable).")],
            false,
        ),
        "unsupported_grant_type" => config_error(what.to_owned(), "the token request's grant_type is wrong or the parameters were not form-encoded", "A client bug: send grant_type and the parameters as application/x-www-form-urlencoded."),
        "unsupported_response_type" | "invalid_scope" | "invalid_request" | "access_denied" => config_error(what.to_owned(), "the authorization request is malformed or was denied", "Check the requested scopes and the connected app's OAuth settings, then log in again."),
        "rate_limit_exceeded" => (
            vec![Finding::new(D::RateLimited, 0.95, ev("the user's login rate limit (about 3,600 token requests per hour) is used up"))],
            false,
        ),
        "authorization_pending" => (
            vec![Finding::new(D::Healthy, 0.5, ev("a device login is waiting for the user's approval; not a failure"))
                .with_fix("Approve the login on the verification page, then keep polling.")],
            true,
        ),
        "invalid_token" | "unsupported_token_type" => (
            session_death(&format!("{what}: the token given to the revoke endpoint is not valid (already expired or revoked)")),
            true,
        ),
        _ => return None,
    })
}

/// A REST, SOAP or Bulk error code with its message.
fn classify_code(what: String, code: &str, message: &str) -> (Vec<Finding>, bool) {
    missing_soap_operation(&what, code, message)
        .or_else(|| refused_login_code(&what, code))
        .unwrap_or_else(|| api_code(&what, code, message))
}

/// A SOAP call posted to an endpoint that has no such operation (`login()` at v65.0 and later).
fn missing_soap_operation(what: &str, code: &str, message: &str) -> Option<(Vec<Finding>, bool)> {
    Some(
        match super::soap_fault::soap_operation_not_available(code, message)? {
            "login" => config_error(
                what.to_owned(),
                "SOAP login() is not available in API v65.0 and later",
                "Log in with OAuth (`sfkeep login --jwt`, `--client-credentials` or `--web`), or use api_version 64.0 or lower until Summer '27. An integration that cannot change can keep calling login() through `sfkeep proxy`, whose login shim answers it.",
            ),
            _ => config_error(
                what.to_owned(),
                "the SOAP endpoint has no such operation: the URL's API (partner /u/, enterprise /c/, metadata /m/) or its version is wrong",
                "Post the call to the endpoint whose WSDL defines it, at a version that has it.",
            ),
        },
    )
}

/// The codes of a refused login (SOAP `login()` faults and their REST forms).
fn refused_login_code(what: &str, code: &str) -> Option<(Vec<Finding>, bool)> {
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    Some(match code {
        "LOGIN_RATE_EXCEEDED" => (
            vec![Finding::new(D::RateLimited, 0.95, ev("the user's login rate limit is used up"))],
            false,
        ),
        "INVALID_LOGIN" => (
            vec![
                Finding::new(D::WrongPassword, 0.5, ev("the username, password or security token was refused: most often a mistyped password or a missing or old security token")),
                Finding::new(D::PasswordChanged, 0.2, ev("a password change also resets the security token, so the stored pair stops working")),
                Finding::new(D::UserFrozen, 0.15, ev("\"or user locked out\": a frozen or locked-out user gets the same fault")),
                Finding::new(D::UserDeactivated, 0.1, ev("a deactivated user gets the same fault on SOAP login")),
            ],
            false,
        ),
        "LOGIN_MUST_USE_SECURITY_TOKEN" => (
            vec![Finding::new(D::WrongPassword, 0.8, ev("the login needs the security token appended to the password (from outside the org's trusted IP ranges)"))],
            false,
        ),
        "INVALID_OPERATION_WITH_EXPIRED_PASSWORD" => (
            vec![Finding::new(D::PasswordChanged, 0.8, ev("the user's password has expired and must be changed"))],
            false,
        ),
        "PASSWORD_LOCKOUT" => (
            vec![Finding::new(D::UserFrozen, 0.5, ev("the user is locked out after too many failed logins"))
                .with_fix("An admin must unlock the user (Setup > Users > Unlock), then fix the stored password.")],
            false,
        ),
        "LOGIN_DURING_RESTRICTED_TIME" => (
            vec![Finding::new(D::IpRestricted, 0.8, ev("the login is outside the profile's login hours"))
                .with_fix("Log in during the profile's allowed login hours, or have an admin widen them (Setup > Profiles > Login Hours).")],
            false,
        ),
        "LOGIN_DURING_RESTRICTED_DOMAIN" => (
            vec![Finding::new(D::IpRestricted, 0.85, ev("the login came from a restricted domain or address"))],
            false,
        ),
        "LOGIN_CHALLENGE_ISSUED" | "LOGIN_CHALLENGE_PENDING" => config_error(what.to_owned(), "Salesforce wants identity verification for this login (a new device or address)", "Use OAuth (JWT bearer) for the integration, or verify the login once, or add the address to the trusted IP ranges."),
        _ => return None,
    })
}

/// The codes of an API call: a dead or unusable session, limits, a disabled API, and the
/// errors that are not about authentication at all.
fn api_code(what: &str, code: &str, message: &str) -> (Vec<Finding>, bool) {
    let m = message.to_ascii_lowercase();
    let ev = |s: &str| vec![what.to_owned(), s.to_owned()];
    match code {
        "INVALID_SESSION_ID" | "InvalidSessionId"
            if m.contains("not valid for use with the rest api")
                || m.contains("not attached to agent") =>
        {
            (
                vec![Finding::new(D::SessionNotValidForApi, 0.95, ev("this 401 is a policy block (high-assurance session required, API Access Control, or no `api` scope), not a dead session: a refresh returns the same"))],
                false,
            )
        }
        "INVALID_SESSION_ID" | "InvalidSessionId" => {
            let what = if m.contains("logs out") || m.contains("session not found") {
                format!("{what}: the session no longer exists on the server")
            } else {
                format!("{what}: the access token or session id is no longer accepted")
            };
            (session_death(&what), true)
        }
        "INVALID_AUTH_HEADER" => config_error(what.to_owned(), "the Authorization header is missing or malformed", "A client bug: send `Authorization: Bearer <access token>`."),
        "REQUEST_LIMIT_EXCEEDED" if message.contains("Concurrent") => not_auth(what.to_owned(), "too many requests are running at once in the org (the concurrent API or long-transaction limit), not the daily allowance", "Retry with backoff (sfkeep's client does, for idempotent calls) and lower the integration's parallelism; long-running requests (over 20 s) count against this limit."),
        "REQUEST_LIMIT_EXCEEDED" => (
            vec![Finding::new(D::RateLimited, 0.95, ev("the org's daily API request limit (rolling 24 h) is used up"))
                .with_fix("Wait for the rolling 24-hour limit to free up, or have the admin raise it; see /limits DailyApiRequests.")],
            false,
        ),
        "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" => (
            vec![Finding::new(D::ApiDisabled, 0.95, ev("the API is not enabled for the org, its edition, or the user's profile"))],
            false,
        ),
        "ORG_LOCKED" => (
            vec![Finding::new(D::ApiDisabled, 0.8, ev("the org is locked"))
                .with_fix("The org is locked: contact the org's admin or Salesforce support.")],
            false,
        ),
        "UNSUPPORTED_API_VERSION" | "InvalidVersion" => config_error(what.to_owned(), "the API version is retired", "Use a supported API version (api_version in the profile; v31.0 or later, SOAP login() needs v64.0 or earlier)."),
        "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION" => not_auth(what.to_owned(), "a Salesforce server error", "Retry with backoff; if it persists, include the ErrorId when contacting support."),
        "INVALID_OPERATION" => not_auth(what.to_owned(), "the operation is not permitted for this user (a 403 that is not a session death)", "Check the integration user's permissions for this operation."),
        _ => not_auth(what.to_owned(), "a request error (field, query or record problem)", "Fix the request: the message says what is wrong with it."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> D {
        let r = recognize_error_text(text);
        assert!(r.is_some(), "not recognized: {text}");
        classify_error_text(text).verdict
    }

    #[test]
    fn a_concurrency_limit_is_not_the_daily_limit() {
        let concurrent = classify_error_text(
            r#"[{"message":"ConcurrentRequests (Concurrent API Requests) Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(concurrent.verdict, D::Healthy);
        assert!(format!("{concurrent:?}").contains("parallelism"));
        let daily = classify_error_text(
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(daily.verdict, D::RateLimited);
    }

    #[test]
    fn soap_login_at_v65_is_a_configuration_problem_with_a_way_out() {
        let fault = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>No operation available for request {urn:partner.soap.sforce.com}login, please check the WSDL for the service.</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let d = classify_error_text(fault);
        assert_eq!(d.verdict, D::Unknown);
        assert!(!d.recoverable);
        let text = format!("{d:?}");
        assert!(text.contains("not available in API v65.0"), "{text}");
        assert!(text.contains("sfkeep proxy"), "{text}");
    }

    #[test]
    fn a_refused_login_never_says_recover_alone_will_do() {
        for body in [
            r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
            r#"{"error":"invalid_grant","error_description":"authentication failure - Invalid Password"}"#,
            "<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring></soapenv:Fault>",
            "Status: Invalid Password",
        ] {
            let d = classify_error_text(body);
            // A wrong password or a missing security token is far likelier than a change.
            assert_eq!(d.verdict, D::WrongPassword, "{body}");
            assert!(!d.recoverable);
            let fix = &d.top().fix;
            assert!(fix.contains("security token"), "{body}: {fix}");
            assert!(!fix.contains("survive a password change"), "{body}: {fix}");
            let changed = d.causes.iter().find(|c| c.cause == D::PasswordChanged);
            if let Some(changed) = changed {
                assert!(
                    changed.fix.contains("new password"),
                    "{body}: {}",
                    changed.fix
                );
            }
        }
    }

    #[test]
    fn pasted_credentials_never_come_back_in_the_evidence() {
        let sid = "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G.qz_3kT5";
        for body in [
            format!("<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: {sid}</faultstring></soapenv:Fault>"),
            format!("ERROR INVALID_SESSION_ID: bad session {sid}"),
            "invalid_grant: expired access/refresh token 5Aep861z_iWbuBORRQMGJwAMr9TAO17bB5r8NLggLI85E5dKY4fK3".to_owned(),
        ] {
            let d = classify_error_text(&body);
            let all = format!("{d:?}");
            assert!(!all.contains("AR8AQ") && !all.contains("iWbuB"), "{all}");
        }
    }

    #[test]
    fn log_lines_and_plain_forms() {
        assert_eq!(
            verdict("2026-01-01 ERROR restforce: invalid_grant: inactive user"),
            D::UserDeactivated
        );
        assert_eq!(
            verdict("Error authenticating with the refresh token due to: ip restricted"),
            D::IpRestricted
        );
        assert_eq!(
            verdict(
                "401 Unauthorized: INVALID_SESSION_ID: This session is not valid for use with the REST API"
            ),
            D::SessionNotValidForApi
        );
        // Offline, a bare session death cannot name its cause: the verdict says so, and the
        // commonest cause comes next.
        let d = classify_error_text(
            r#"{"level":"error","body":"[{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]"}"#,
        );
        assert_eq!(d.verdict, D::Unknown);
        assert!(d.recoverable);
        assert!(
            d.top()
                .evidence
                .iter()
                .any(|e| e.contains("cannot be known"))
        );
        assert_eq!(d.causes[1].cause, D::SessionTimeout);
        let lines: Vec<&String> = d.causes[1..].iter().flat_map(|c| &c.evidence).collect();
        let distinct: std::collections::HashSet<&String> = lines.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            lines.len(),
            "one line per candidate: {d:#?}"
        );
        assert_eq!(
            verdict(
                "/callback?error=invalid_client_id&error_description=client%20identifier%20invalid"
            ),
            D::InvalidClient
        );
        assert_eq!(verdict("ERROR: Bad_Oauth_Token"), D::Unknown);
        assert_eq!(verdict("Status: User Is Frozen"), D::UserFrozen);
    }

    #[test]
    fn non_errors_are_not_recognized() {
        for t in [
            "",
            "hello world",
            r#"{"totalSize":0,"done":true,"records":[]}"#,
            r#"{"error":"something went wrong in my app"}"#,
            "<html><body>ok</body></html>",
        ] {
            assert_eq!(recognize_error_text(t), None, "{t}");
            let d = classify_error_text(t);
            assert_eq!(d.verdict, D::Unknown);
            assert!(d.causes[0].evidence[0].contains("does not look like a Salesforce error"));
        }
    }
}
