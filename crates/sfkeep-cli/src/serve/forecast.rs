//! Forecasts: each a dated death (or a count nearing a limit) with its evidence and the fix, or
//! "unknown" with the reason; never a guess presented as fact. The Salesforce facts and their
//! sources are in docs/guardian.md.
//!
//! | kind | date | from |
//! |---|---|---|
//! | `refresh_token_expiry` | the absolute refresh-token expiry | `refresh_token_expires_at`, or `refresh_token_max_age` + the approval's `OauthToken.CreatedDate` |
//! | `refresh_token_idle_expiry` | last use + idle TTL (only when keep-alive is off) | the stored record's issue time, `refresh_token_idle_ttl` |
//! | `jwt_certificate_expiry` | the certificate's NotAfter | `jwt_cert` |
//! | `password_expiry` | last change + policy (password and SOAP-login grants only) | `User.LastPasswordChangeDate`, `password_max_age` |
//! | `approval_limit` | none: approvals used of five per user and app | `OauthToken` rows |
//! | `api_requests_exhausted` | when the daily API limit runs out at the current rate | `/limits` `DailyApiRequests`, sampled |

use std::time::Duration;

use serde::Serialize;
use sfkeep::clock::UnixMillis;

use super::orgfacts::{Approval, OrgFacts};
use super::settings::{PasswordPolicy, ProfileGuardian};

/// Approvals a user may give one connected app before the least recently used is revoked.
pub const APPROVAL_LIMIT: usize = 5;

/// What a forecast is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastKind {
    /// The refresh token's absolute lifetime ends.
    RefreshTokenExpiry,
    /// The refresh token dies unused (keep-alive off).
    RefreshTokenIdleExpiry,
    /// The JWT certificate's NotAfter.
    JwtCertificateExpiry,
    /// The integration user's password expires.
    PasswordExpiry,
    /// The five-approvals-per-user-per-app limit.
    ApprovalLimit,
    /// The daily API request limit runs out.
    ApiRequestsExhausted,
}

impl ForecastKind {
    /// The snake_case name (metric label, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshTokenExpiry => "refresh_token_expiry",
            Self::RefreshTokenIdleExpiry => "refresh_token_idle_expiry",
            Self::JwtCertificateExpiry => "jwt_certificate_expiry",
            Self::PasswordExpiry => "password_expiry",
            Self::ApprovalLimit => "approval_limit",
            Self::ApiRequestsExhausted => "api_requests_exhausted",
        }
    }

    /// A short title for people.
    pub fn title(self) -> &'static str {
        match self {
            Self::RefreshTokenExpiry => "refresh token expires (absolute lifetime)",
            Self::RefreshTokenIdleExpiry => "refresh token expires unused (idle TTL)",
            Self::JwtCertificateExpiry => "JWT certificate expires",
            Self::PasswordExpiry => "integration user's password expires",
            Self::ApprovalLimit => "approvals of this app by this user",
            Self::ApiRequestsExhausted => "daily API requests run out",
        }
    }
}

/// What a forecast says.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outlook {
    /// Dies (or runs out) at `at`.
    Dated {
        /// When (server clock).
        at: UnixMillis,
    },
    /// Approvals in use of the limit.
    Count {
        /// In use.
        used: usize,
        /// The limit.
        limit: usize,
    },
    /// Nothing is coming (e.g. usage is flat, policy "never").
    Clear,
    /// Cannot be told; `why` says what is missing.
    Unknown {
        /// What is missing.
        why: String,
    },
}

/// One forecast.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Forecast {
    /// What it is about.
    pub kind: ForecastKind,
    /// What it says.
    #[serde(flatten)]
    pub outlook: Outlook,
    /// Why (the facts it was computed from).
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
}

impl Forecast {
    /// Time left from `now`, for dated forecasts.
    pub fn remaining(&self, now: UnixMillis) -> Option<Duration> {
        match self.outlook {
            Outlook::Dated { at } => Some(Duration::from_millis((at.0 - now.0).max(0) as u64)),
            _ => None,
        }
    }
}

/// The API usage at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// When it was read (server clock).
    pub at: UnixMillis,
    /// `DailyApiRequests.Max`.
    pub max: u64,
    /// `DailyApiRequests.Remaining`.
    pub remaining: u64,
}

impl ApiUsage {
    /// Percent used.
    pub fn percent_used(&self) -> f64 {
        if self.max == 0 {
            return 0.0;
        }
        (self.max.saturating_sub(self.remaining)) as f64 * 100.0 / self.max as f64
    }
}

/// What the forecasts are computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Now, on the server's clock.
    pub now: UnixMillis,
    /// The profile's guardian keys.
    pub guardian: &'a ProfileGuardian,
    /// The profile's primary grant uses a refresh token.
    pub uses_refresh_token: bool,
    /// A grant of the profile sends the password (password, SOAP login).
    pub uses_password: bool,
    /// Keep-alive is on for this profile.
    pub keep_alive: bool,
    /// When the refresh token was last used, as far as the store tells (the newest record
    /// obtained with it).
    pub refresh_token_last_used: Option<UnixMillis>,
    /// The idle TTL learned from an observed death, if any (used when the profile sets none).
    pub learned_idle_ttl: Option<&'a crate::serve::keepalive::Learned>,
    /// The JWT certificate's NotAfter, or why it could not be read.
    pub jwt_cert_not_after: Option<Result<UnixMillis, String>>,
    /// The latest facts read from the org, or why there are none.
    pub org: Result<&'a OrgFacts, String>,
    /// API usage samples, oldest first.
    pub api_samples: &'a [ApiUsage],
}

/// Every forecast that applies to the profile.
pub fn compute(i: &Inputs<'_>) -> Vec<Forecast> {
    let mut out = Vec::new();
    if i.uses_refresh_token {
        out.push(absolute_expiry(i));
        if !i.keep_alive {
            out.push(idle_expiry(i));
        }
        out.push(approvals(i));
    }
    if let Some(cert) = &i.jwt_cert_not_after {
        out.push(jwt_certificate(cert));
    }
    if i.uses_password {
        out.push(password(i));
    }
    out.push(api_usage(i));
    out
}

fn iso(t: UnixMillis) -> String {
    t.to_string()
}

fn days(d: Duration) -> String {
    sfkeep::diagnose::evidence::human_exact(d)
}

fn absolute_expiry(i: &Inputs<'_>) -> Forecast {
    let kind = ForecastKind::RefreshTokenExpiry;
    let fix = "Before that date, get a new refresh token (`sfkeep login --web`), or move the profile to a grant without one (JWT bearer); raise the app's refresh-token policy if it is shorter than you need (Manage Connected Apps > OAuth Policies).".to_owned();
    if let Some(at) = i.guardian.expires_at {
        return Forecast {
            kind,
            outlook: Outlook::Dated { at },
            evidence: vec![format!(
                "the profile's refresh_token_expires_at is {}",
                iso(at)
            )],
            fix,
        };
    }
    let Some(max_age) = i.guardian.max_age else {
        return Forecast {
            kind,
            outlook: Outlook::Unknown {
                why: "the profile sets no refresh_token_max_age or refresh_token_expires_at (the app's \"Expire refresh token after\" policy is not readable through the API); without an absolute policy the token lives until revoked or idle".to_owned(),
            },
            evidence: Vec::new(),
            fix,
        };
    };
    let org = match &i.org {
        Ok(o) => o,
        Err(why) => {
            return Forecast {
                kind,
                outlook: Outlook::Unknown {
                    why: format!(
                        "the refresh token's issue time comes from OauthToken.CreatedDate, which could not be read: {why}"
                    ),
                },
                evidence: Vec::new(),
                fix,
            };
        }
    };
    match org.own_approval(i.refresh_token_last_used) {
        Ok((a, how)) => {
            let at = a.created.plus(max_age);
            Forecast {
                kind,
                outlook: Outlook::Dated { at },
                evidence: vec![
                    format!(
                        "the approval of {} ({how}) was created {}",
                        a.app_name,
                        iso(a.created)
                    ),
                    format!(
                        "the profile's refresh_token_max_age is {}: the token dies {}",
                        days(max_age),
                        iso(at)
                    ),
                ],
                fix,
            }
        }
        Err(why) => Forecast {
            kind,
            outlook: Outlook::Unknown { why },
            evidence: Vec::new(),
            fix,
        },
    }
}

fn idle_expiry(i: &Inputs<'_>) -> Forecast {
    let (ttl, source) = crate::serve::keepalive::idle_ttl(i.guardian.idle_ttl, i.learned_idle_ttl);
    let fix = "Turn keep-alive on (`keep_alive = true`, the default, with `sfkeep serve` running), or call the integration at least once per idle period.".to_owned();
    match i.refresh_token_last_used {
        Some(last) => {
            let at = last.plus(ttl);
            Forecast {
                kind: ForecastKind::RefreshTokenIdleExpiry,
                outlook: Outlook::Dated { at },
                evidence: vec![
                    format!("the refresh token was last used {}", iso(last)),
                    format!(
                        "the idle TTL is {} ({}); keep-alive is off",
                        days(ttl),
                        match source {
                            "profile" => "refresh_token_idle_ttl",
                            "learned" => "learned from the refresh token's death by the idle policy",
                            _ => "Salesforce's 30-day limit, assumed",
                        }
                    ),
                ],
                fix,
            }
        }
        None => Forecast {
            kind: ForecastKind::RefreshTokenIdleExpiry,
            outlook: Outlook::Unknown {
                why: "the store holds no record obtained with the refresh token, so its last use is not known".to_owned(),
            },
            evidence: Vec::new(),
            fix,
        },
    }
}

fn jwt_certificate(cert: &Result<UnixMillis, String>) -> Forecast {
    let fix = "Make a new key and certificate, upload the certificate to the connected app (Manage Connected Apps > Edit > Use digital signatures), then point jwt_key and jwt_cert at the new files. Salesforce has been reported to keep accepting assertions after NotAfter (docs/guardian.md), but rotate before it: your policy, or a stricter Salesforce, will not wait.".to_owned();
    match cert {
        Ok(at) => Forecast {
            kind: ForecastKind::JwtCertificateExpiry,
            outlook: Outlook::Dated { at: *at },
            evidence: vec![format!(
                "the profile's jwt_cert is valid until {} (NotAfter)",
                iso(*at)
            )],
            fix,
        },
        Err(why) => Forecast {
            kind: ForecastKind::JwtCertificateExpiry,
            outlook: Outlook::Unknown { why: why.clone() },
            evidence: Vec::new(),
            fix,
        },
    }
}

fn password(i: &Inputs<'_>) -> Forecast {
    let kind = ForecastKind::PasswordExpiry;
    let fix = "Change the integration user's password before then and update the profile's password and security_token secrets, or give the user \"Password Never Expires\" (a profile or permission set for API users), or move to a grant without a password (JWT bearer).".to_owned();
    let policy = match i.guardian.password_policy {
        None => {
            return Forecast {
                kind,
                outlook: Outlook::Unknown {
                    why: "the profile sets no password_max_age (the org's \"User passwords expire in\" policy, 90 days by default, is not readable through the API)".to_owned(),
                },
                evidence: Vec::new(),
                fix,
            };
        }
        Some(PasswordPolicy::Never) => {
            return Forecast {
                kind,
                outlook: Outlook::Clear,
                evidence: vec!["the profile's password_max_age is \"never\"".to_owned()],
                fix,
            };
        }
        Some(PasswordPolicy::ExpiresAfter(d)) => d,
    };
    let changed = match &i.org {
        Ok(o) => match &o.user {
            Ok(u) => u.last_password_change.clone(),
            Err(why) => Err(why.clone()),
        },
        Err(why) => Err(why.clone()),
    };
    match changed {
        Ok(at_change) => {
            let at = at_change.plus(policy);
            Forecast {
                kind,
                outlook: Outlook::Dated { at },
                evidence: vec![
                    format!("User.LastPasswordChangeDate is {}", iso(at_change)),
                    format!("the profile's password_max_age is {}", days(policy)),
                ],
                fix,
            }
        }
        Err(why) => Forecast {
            kind,
            outlook: Outlook::Unknown {
                why: format!("User.LastPasswordChangeDate could not be read: {why}"),
            },
            evidence: Vec::new(),
            fix,
        },
    }
}

fn approvals(i: &Inputs<'_>) -> Forecast {
    let kind = ForecastKind::ApprovalLimit;
    let fix = "Stop approving this connected app as the integration user elsewhere (a person logging in on a laptop, the sf CLI, another tool): give people their own users, or revoke approvals you do not need (Settings > Advanced User Details > OAuth Connected Apps). The next approval beyond five revokes the least recently used one.".to_owned();
    let org = match &i.org {
        Ok(o) => o,
        Err(why) => {
            return Forecast {
                kind,
                outlook: Outlook::Unknown { why: why.clone() },
                evidence: Vec::new(),
                fix,
            };
        }
    };
    match org.app_approvals(i.guardian.app_name.as_deref(), i.refresh_token_last_used) {
        Ok((app, rows)) => {
            let mut evidence = vec![format!(
                "OauthToken shows {} approval(s) of {app} by the integration user (the limit is {APPROVAL_LIMIT} per user per app)",
                rows.len()
            )];
            evidence.extend(rows.iter().map(Approval::describe));
            Forecast {
                kind,
                outlook: Outlook::Count {
                    used: rows.len(),
                    limit: APPROVAL_LIMIT,
                },
                evidence,
                fix,
            }
        }
        Err(why) => Forecast {
            kind,
            outlook: Outlook::Unknown { why },
            evidence: Vec::new(),
            fix,
        },
    }
}

/// The usage rate over the samples of the last 24 hours, in requests per millisecond.
/// The shortest span of samples a rate is computed from: over seconds, a few requests (the
/// guardian's own reads among them) extrapolate to a false "runs out in minutes".
const MIN_RATE_SPAN_MS: i64 = 15 * 60 * 1000;

/// Why no rate: the samples of the last 24 h span too little time, or usage did not grow.
enum NoRate {
    TooShort,
    Flat,
}

fn usage_rate(samples: &[ApiUsage], now: UnixMillis) -> Result<f64, NoRate> {
    let day = 86_400_000;
    let recent: Vec<&ApiUsage> = samples.iter().filter(|s| now.0 - s.at.0 <= day).collect();
    let (Some(first), Some(last)) = (recent.first(), recent.last()) else {
        return Err(NoRate::TooShort);
    };
    let dt = last.at.0 - first.at.0;
    if dt < MIN_RATE_SPAN_MS {
        return Err(NoRate::TooShort);
    }
    let used_first = first.max.saturating_sub(first.remaining);
    let used_last = last.max.saturating_sub(last.remaining);
    if used_last <= used_first {
        return Err(NoRate::Flat);
    }
    Ok((used_last - used_first) as f64 / dt as f64)
}

fn api_usage(i: &Inputs<'_>) -> Forecast {
    let kind = ForecastKind::ApiRequestsExhausted;
    let fix = "Find what spends the requests (Setup > System Overview, the API Usage report); batch calls (composite, Bulk API 2.0), cache reads, or buy a larger limit. The daily limit frees requests on a rolling 24-hour window.".to_owned();
    let Some(last) = i.api_samples.last() else {
        return Forecast {
            kind,
            outlook: Outlook::Unknown {
                why: match &i.org {
                    Err(why) => why.clone(),
                    Ok(o) => o
                        .limits_error
                        .clone()
                        .unwrap_or_else(|| "the daily API limit has not been read yet".to_owned()),
                },
            },
            evidence: Vec::new(),
            fix,
        };
    };
    let mut evidence = vec![format!(
        "DailyApiRequests: {} of {} used ({:.0} %) at {}",
        last.max.saturating_sub(last.remaining),
        last.max,
        last.percent_used(),
        iso(last.at)
    )];
    if last.remaining == 0 {
        return Forecast {
            kind,
            outlook: Outlook::Dated { at: last.at },
            evidence,
            fix,
        };
    }
    match usage_rate(i.api_samples, i.now) {
        Ok(rate) => {
            let ms = (last.remaining as f64 / rate).min(3.0e12) as i64;
            let at = UnixMillis(last.at.0.saturating_add(ms));
            evidence.push(format!(
                "at the rate of the last samples ({:.0} requests per hour) the rest lasts until {}",
                rate * 3_600_000.0,
                iso(at)
            ));
            Forecast {
                kind,
                outlook: Outlook::Dated { at },
                evidence,
                fix,
            }
        }
        Err(NoRate::TooShort) => Forecast {
            kind,
            outlook: Outlook::Unknown {
                why: format!(
                    "{}; the samples of the last 24 hours span less than 15 minutes, too little for a rate",
                    evidence[0]
                ),
            },
            evidence,
            fix,
        },
        Err(NoRate::Flat) => {
            evidence.push("usage did not grow between the samples".to_owned());
            Forecast {
                kind,
                outlook: Outlook::Clear,
                evidence,
                fix,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::orgfacts::UserFacts;

    const DAY: i64 = 86_400_000;

    fn facts(approvals: Vec<Approval>) -> OrgFacts {
        OrgFacts {
            read_at: UnixMillis(100 * DAY),
            user: Ok(UserFacts {
                id: "005x".into(),
                last_password_change: Ok(UnixMillis(10 * DAY)),
            }),
            approvals: Ok(approvals),
            login_history: Ok(Vec::new()),
            setup_audit: Ok(Vec::new()),
            limits_error: None,
        }
    }

    fn approval(app: &str, created: i64, used: i64) -> Approval {
        Approval {
            app_name: app.into(),
            created: UnixMillis(created * DAY),
            last_used: Some(UnixMillis(used * DAY)),
            use_count: 3,
        }
    }

    fn inputs<'a>(g: &'a ProfileGuardian, org: &'a OrgFacts) -> Inputs<'a> {
        Inputs {
            now: UnixMillis(100 * DAY),
            guardian: g,
            uses_refresh_token: true,
            uses_password: true,
            keep_alive: false,
            refresh_token_last_used: Some(UnixMillis(95 * DAY)),
            learned_idle_ttl: None,
            jwt_cert_not_after: Some(Ok(UnixMillis(110 * DAY))),
            org: Ok(org),
            api_samples: &[],
        }
    }

    fn find(f: &[Forecast], k: ForecastKind) -> &Forecast {
        f.iter().find(|x| x.kind == k).unwrap()
    }

    #[test]
    fn dates_come_from_policy_and_evidence() {
        let g = ProfileGuardian {
            max_age: Some(Duration::from_secs(90 * 86_400)),
            password_policy: Some(PasswordPolicy::ExpiresAfter(Duration::from_secs(
                90 * 86_400,
            ))),
            ..ProfileGuardian::default()
        };
        let org = facts(vec![
            approval("Billing", 20, 95),
            approval("Billing", 60, 61),
        ]);
        let f = compute(&inputs(&g, &org));
        let abs = find(&f, ForecastKind::RefreshTokenExpiry);
        assert_eq!(
            abs.outlook,
            Outlook::Dated {
                at: UnixMillis(110 * DAY)
            }
        );
        let idle = find(&f, ForecastKind::RefreshTokenIdleExpiry);
        assert_eq!(
            idle.outlook,
            Outlook::Dated {
                at: UnixMillis(125 * DAY)
            }
        );
        let pw = find(&f, ForecastKind::PasswordExpiry);
        assert_eq!(
            pw.outlook,
            Outlook::Dated {
                at: UnixMillis(100 * DAY)
            }
        );
        let cert = find(&f, ForecastKind::JwtCertificateExpiry);
        assert_eq!(
            cert.remaining(UnixMillis(100 * DAY)),
            Some(Duration::from_secs(10 * 86_400))
        );
        let ap = find(&f, ForecastKind::ApprovalLimit);
        assert_eq!(ap.outlook, Outlook::Count { used: 2, limit: 5 });
        assert_eq!(ap.evidence.len(), 3, "{:?}", ap.evidence);
    }

    #[test]
    fn missing_facts_say_unknown_and_why() {
        let g = ProfileGuardian::default();
        let org = facts(Vec::new());
        let mut i = inputs(&g, &org);
        i.org = Err("OauthToken is not readable by this user".into());
        i.jwt_cert_not_after = Some(Err("jwt_cert is not a certificate".into()));
        let f = compute(&i);
        for k in [
            ForecastKind::RefreshTokenExpiry,
            ForecastKind::ApprovalLimit,
            ForecastKind::JwtCertificateExpiry,
            ForecastKind::PasswordExpiry,
            ForecastKind::ApiRequestsExhausted,
        ] {
            assert!(
                matches!(find(&f, k).outlook, Outlook::Unknown { .. }),
                "{k:?}: {:?}",
                find(&f, k)
            );
        }
    }

    #[test]
    fn api_exhaustion_follows_the_rate() {
        let g = ProfileGuardian::default();
        let org = facts(Vec::new());
        let samples = [
            ApiUsage {
                at: UnixMillis(100 * DAY - 3_600_000),
                max: 15_000,
                remaining: 10_000,
            },
            ApiUsage {
                at: UnixMillis(100 * DAY),
                max: 15_000,
                remaining: 9_000,
            },
        ];
        let mut i = inputs(&g, &org);
        i.api_samples = &samples;
        let f = compute(&i);
        let api = find(&f, ForecastKind::ApiRequestsExhausted);
        // 1,000 an hour, 9,000 left: nine hours.
        assert_eq!(api.remaining(i.now), Some(Duration::from_secs(9 * 3600)));
        let flat = [
            samples[0],
            ApiUsage {
                at: UnixMillis(100 * DAY),
                ..samples[0]
            },
        ];
        i.api_samples = &flat;
        assert_eq!(
            find(&compute(&i), ForecastKind::ApiRequestsExhausted).outlook,
            Outlook::Clear
        );
        // Samples seconds apart (the guardian's own reads among them) give no rate at all,
        // rather than "runs out in minutes".
        let burst = [
            ApiUsage {
                at: UnixMillis(100 * DAY - 150),
                max: 15_000,
                remaining: 14_995,
            },
            ApiUsage {
                at: UnixMillis(100 * DAY),
                max: 15_000,
                remaining: 14_990,
            },
        ];
        i.api_samples = &burst;
        let api = find(&compute(&i), ForecastKind::ApiRequestsExhausted).clone();
        assert!(
            matches!(&api.outlook, Outlook::Unknown { why } if why.contains("less than 15 minutes")),
            "{:?}",
            api.outlook
        );
    }
}
