//! The partner SOAP API at `/services/Soap/u/{version}[/{orgId}]` and the enterprise one at
//! `/services/Soap/c/{version}[/{orgId}[/{wsdlId}]]`: `login`, `getUserInfo`, `query`,
//! `queryMore`, `logout`, with the same API-version calendar and session checks; they differ
//! only in what `soapxml::Flavour` renders (namespaces, typed records, the enterprise
//! `INVALID_SESSION_ID` text) and in the `serverUrl` a login returns. A SOAP session is an
//! ordinary session: it works as a REST bearer token, and OAuth access tokens work in the
//! SessionHeader. Faults go out with HTTP 500 and `text/xml;charset=UTF-8` (docs/salesforce-wire.md §5.3).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use crate::ids;
use crate::objects;
use crate::sessions::{self, Refusal};
use crate::soapxml::{self, FaultKind, Flavour, LoginResultXml, SoapRequest, UserInfoXml};
use crate::state::{Cursor, CursorRows, Inner, Org, Session, login_status};
use crate::versions;
use crate::wire::{self, RawBody};

/// SOAP `query` batch size when QueryOptions says nothing (the partner API's default).
const DEFAULT_BATCH: usize = 500;
/// LoginHistory.LoginType of a SOAP API login. UNVERIFIED: "Other Apex API" is a listed
/// picklist value; which one Salesforce writes for partner-API logins is not recorded.
const SOAP_LOGIN_TYPE: &str = "Other Apex API";
const INVALID_LOGIN: &str = "Invalid username, password, security token; or user locked out.";

/// The faultstring's message of `API_DISABLED_FOR_ORG` (a code of the WSDL's ExceptionCode;
/// this message is the one client logs show, docs/salesforce-wire.md §5.3).
const API_DISABLED: &str = "API is not enabled for this Organization or Partner";
/// The message of `INVALID_OPERATION_WITH_EXPIRED_PASSWORD` (UNVERIFIED wording; the code is
/// in the WSDL's ExceptionCode enumeration).
pub const PASSWORD_EXPIRED: &str = "The users password has expired, you must call SetPassword before attempting any other API operations";

fn fault(flavour: Flavour, kind: FaultKind, code: &str, message: &str) -> Response {
    wire::soap(
        StatusCode::INTERNAL_SERVER_ERROR,
        soapxml::fault(flavour, kind, code, message),
    )
}

fn invalid_session(flavour: Flavour, session_id: Option<&str>) -> Response {
    wire::soap(
        StatusCode::INTERNAL_SERVER_ERROR,
        soapxml::invalid_session_fault(flavour, session_id),
    )
}

fn ok(body: String) -> Response {
    wire::soap(StatusCode::OK, body)
}

/// `POST /services/Soap/u/…` (partner) and `POST /services/Soap/c/…` (enterprise).
pub async fn handle(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    RawBody(body): RawBody,
) -> Response {
    let flavour = Flavour::from_path(uri.path());
    let version = uri
        .path()
        .trim_start_matches("/services/Soap/")
        .trim_start_matches(flavour.segment())
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let major = versions::major(&version);
    if major.is_some_and(|v| v < versions::FIRST_SUPPORTED) {
        // DOC (api_eol_soap): a retired version answers 500 UNSUPPORTED_API_VERSION for every
        // operation. The message text is UNVERIFIED.
        return fault(
            flavour,
            FaultKind::UnexpectedError,
            "UNSUPPORTED_API_VERSION",
            "Invalid Api version specified on URL",
        );
    }
    let req = match soapxml::parse_request(&body) {
        Ok(r) => r,
        // The parse message never contains request content (it may hold a password).
        Err(e) => {
            return fault(
                flavour,
                FaultKind::UnexpectedError,
                "INVALID_XML",
                &e.message,
            );
        }
    };
    let mut inner = org.lock();
    let peer = peer.ip();
    if let SoapRequest::Login { username, password } = &req {
        if major.is_some_and(|v| v >= versions::FIRST_WITHOUT_SOAP_LOGIN) {
            // login() is not part of the v65.0+ APIs (docs/salesforce-wire.md §5): the
            // dispatcher does not know the operation. No credential is checked and no
            // LoginHistory row is written, because no login was attempted.
            inner.stats.soap_logins += 1;
            return wire::soap(
                StatusCode::INTERNAL_SERVER_ERROR,
                soapxml::dispatch_fault(flavour, "login"),
            );
        }
        return login(
            &org, &mut inner, flavour, &version, username, password, peer,
        );
    }
    inner.stats.api_requests += 1;
    let session = match req
        .session_id()
        .map(|sid| sessions::validate_api(&mut inner, sid, peer))
    {
        Some(Ok(s)) => s,
        // The WSDL's ExceptionCode; the faultstring is the one jsforce and others log.
        Some(Err(Refusal::ApiDisabled)) => {
            return fault(
                flavour,
                FaultKind::UnexpectedError,
                "API_DISABLED_FOR_ORG",
                API_DISABLED,
            );
        }
        Some(Err(Refusal::PasswordExpired)) => {
            return fault(
                flavour,
                FaultKind::UnexpectedError,
                "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
                PASSWORD_EXPIRED,
            );
        }
        // UNVERIFIED: a session without the api scope is refused like a dead one.
        Some(Err(Refusal::Invalid | Refusal::NotApi)) | None => {
            inner.stats.invalid_session_responses += 1;
            return invalid_session(flavour, req.session_id());
        }
    };
    if inner.api_used >= inner.daily_api_limit {
        return fault(
            flavour,
            FaultKind::UnexpectedError,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
    }
    inner.api_used += 1;
    match req {
        SoapRequest::GetUserInfo { .. } => match user_info(&org, &inner, &session) {
            Some(u) => ok(soapxml::get_user_info_response(flavour, &u)),
            None => invalid_session(flavour, Some(&session.token)),
        },
        SoapRequest::Query {
            query, batch_size, ..
        } => {
            let batch = batch_size.unwrap_or(DEFAULT_BATCH).clamp(200, 2000);
            run_query(&org, &mut inner, flavour, &query, batch, &session.token)
        }
        SoapRequest::QueryMore { locator, .. } => query_more(&mut inner, flavour, &locator),
        SoapRequest::Logout { .. } => {
            inner.sessions.remove(&session.token);
            ok(soapxml::logout_response(flavour))
        }
        SoapRequest::Other { operation, .. } => fault(
            flavour,
            FaultKind::UnexpectedError,
            "UNKNOWN_EXCEPTION",
            &format!("The simulated org does not implement {operation}()"),
        ),
        SoapRequest::Login { .. } => unreachable_login(flavour),
    }
}

/// `login` was answered above; kept total without a panic path.
fn unreachable_login(flavour: Flavour) -> Response {
    fault(flavour, FaultKind::Login, "INVALID_LOGIN", INVALID_LOGIN)
}

/// The `serverUrl` of a login. Partner: `…/Soap/u/{version}/{orgId15}` (RECORDED, §5.2).
/// Enterprise: `…/Soap/c/{version}/{orgId15}/0DF…`, the trailing id as in simple-salesforce's
/// enterprise FIXTURE (`/services/Soap/c/29.0/00Di0000000icUB/0DFi00000008UYO`) and the
/// `soap:address` of generated enterprise WSDLs; what that `0DF` record is, is UNVERIFIED (one
/// fixed id per org here).
fn server_url(org: &Org, flavour: Flavour, version: &str) -> String {
    let base = format!(
        "{}/services/Soap/{}/{version}/{}",
        org.base_url,
        flavour.segment(),
        org.org_id15
    );
    match flavour {
        Flavour::Partner => base,
        Flavour::Enterprise => format!("{base}/{}", ids::id15("0DF", &org.pod, 1)),
    }
}

fn user_info(org: &Org, inner: &Inner, session: &Session) -> Option<UserInfoXml> {
    let u = &inner.users[inner.user_by_id(&session.user_id)?];
    Some(UserInfoXml {
        organization_id: org.org_id.clone(),
        organization_name: org.org_name.clone(),
        user_id: u.id.clone(),
        user_name: u.username.clone(),
        user_email: u.email.clone(),
        user_full_name: u.full_name(),
        profile_id: u.profile_id.clone(),
        role_id: None,
        session_seconds_valid: session.timeout_secs,
        user_time_zone: "GMT".into(),
        user_language: "en_US".into(),
        user_locale: "en_US".into(),
    })
}

fn login(
    org: &Org,
    inner: &mut Inner,
    flavour: Flavour,
    version: &str,
    username: &str,
    password: &str,
    peer: std::net::IpAddr,
) -> Response {
    inner.stats.soap_logins += 1;
    let now = inner.now();
    let Some(ui) = inner.user_by_name(username) else {
        return fault(flavour, FaultKind::Login, "INVALID_LOGIN", INVALID_LOGIN);
    };
    let u = &inner.users[ui];
    let user_id = u.id.clone();
    let expected = format!("{}{}", u.password, u.security_token);
    // UNVERIFIED: Salesforce's SOAP fault codes for inactive, frozen and IP-restricted users
    // are not recorded; all answer INVALID_LOGIN here, and LoginHistory tells them apart.
    let (status, code) = if !crate::oauth::secret_eq(password, &expected) {
        (login_status::INVALID_PASSWORD, Some("INVALID_LOGIN"))
    } else if !u.active {
        (login_status::INACTIVE, Some("INVALID_LOGIN"))
    } else if u.frozen {
        (login_status::FROZEN, Some("INVALID_LOGIN"))
    } else if !inner.network.login_allowed(peer) {
        (login_status::RESTRICTED_IP, Some("INVALID_LOGIN"))
    } else if !u.api_enabled {
        // UNVERIFIED: the LoginHistory status of a login refused for a missing "API Enabled".
        (login_status::API_DISABLED, Some("API_DISABLED_FOR_ORG"))
    } else if !inner.rate_limit_ok(&user_id, now) {
        // UNVERIFIED fault code (restforce PR #744 cites LOGIN_RATE_EXCEEDED).
        (login_status::RATE_EXCEEDED, Some("LOGIN_RATE_EXCEEDED"))
    } else {
        (login_status::SUCCESS, None)
    };
    inner.log_login(
        &org.pod,
        &org.base_url,
        &user_id,
        peer,
        status,
        SOAP_LOGIN_TYPE,
        "N/A",
    );
    if let Some(code) = code {
        return match code {
            "INVALID_LOGIN" => fault(flavour, FaultKind::Login, code, INVALID_LOGIN),
            "API_DISABLED_FOR_ORG" => {
                fault(flavour, FaultKind::UnexpectedError, code, API_DISABLED)
            }
            _ => fault(flavour, FaultKind::Login, code, "Login rate exceeded."),
        };
    }
    inner.users[ui].last_login = Some(now);
    // SOAP API Developer Guide, LoginResult: with an expired password the login succeeds,
    // `passwordExpired` is true and the session may only call setPassword() (src/sessions.rs).
    let password_expired = inner.password_expired(ui);
    let token = org.new_access_token();
    let session = Session {
        id: inner.next_id("0Ak", &org.pod),
        token: token.clone(),
        user_id: user_id.clone(),
        client_id: None,
        created: now,
        last_modified: now,
        timeout_secs: inner.timeout_for(None),
        source_ip: peer,
        session_type: "API",
        login_type: SOAP_LOGIN_TYPE,
        api: true,
        scope: "api web full".into(),
        family: None,
    };
    inner.issued_access.push(token.clone());
    inner.sessions.insert(token.clone(), session.clone());
    let Some(info) = user_info(org, inner, &session) else {
        return fault(flavour, FaultKind::Login, "INVALID_LOGIN", INVALID_LOGIN);
    };
    let result = LoginResultXml {
        server_url: server_url(org, flavour, version),
        metadata_server_url: format!(
            "{}/services/Soap/m/{version}/{}",
            org.base_url, org.org_id15
        ),
        session_id: token,
        user_id,
        password_expired,
        sandbox: false,
        user_info: info,
    };
    ok(soapxml::login_response(flavour, &result))
}

fn run_query(
    org: &Org,
    inner: &mut Inner,
    flavour: Flavour,
    soql: &str,
    batch: usize,
    current: &str,
) -> Response {
    let result = match objects::run(org, inner, soql, false, current) {
        Ok(r) => r,
        Err(e) => return fault(flavour, FaultKind::InvalidQuery, e.code, &e.message),
    };
    if result.count_only {
        return ok(soapxml::query_response(
            flavour,
            &result.object,
            &[],
            true,
            None,
            result.total,
            false,
        ));
    }
    let total = result.rows.len();
    if total <= batch {
        return ok(soapxml::query_response(
            flavour,
            &result.object,
            &result.rows,
            true,
            None,
            total,
            false,
        ));
    }
    let first = result.rows[..batch].to_vec();
    let object = result.object.clone();
    let cursor = inner.store_cursor(
        &org.pod,
        Cursor {
            object: result.object,
            rows: CursorRows::Soap(result.rows),
            batch,
        },
    );
    let locator = format!("{cursor}-{batch}");
    ok(soapxml::query_response(
        flavour,
        &object,
        &first,
        false,
        Some(&locator),
        total,
        false,
    ))
}

fn query_more(inner: &mut Inner, flavour: Flavour, locator: &str) -> Response {
    let invalid = || {
        fault(
            flavour,
            FaultKind::InvalidQuery,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((cursor, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    // A REST cursor holds serialized JSON, not rows SOAP can page.
    let Some((c, CursorRows::Soap(rows))) = inner.cursors.get(cursor).map(|c| (c, &c.rows)) else {
        return invalid();
    };
    let total = rows.len();
    if offset >= total {
        return invalid();
    }
    let end = (offset + c.batch).min(total);
    let next = (end < total).then(|| format!("{cursor}-{end}"));
    ok(soapxml::query_response(
        flavour,
        &c.object,
        &rows[offset..end],
        next.is_none(),
        next.as_deref(),
        total,
        true,
    ))
}
