//! The naive client most integrations are: it logs in once with SOAP and caches the session id
//! forever. It shows where today's integrations fail.

use super::org::DemoOrg;
use crate::error::{CliError, CliResult};

/// Logs in once; never again.
pub struct NaiveClient {
    session_id: String,
    instance_url: String,
    http: reqwest::Client,
    /// The first failure it met, if any.
    pub first_failure: Option<String>,
}

impl NaiveClient {
    /// The one SOAP login.
    pub async fn login(org: &DemoOrg) -> CliResult<Self> {
        let i = org.info();
        let clock =
            sfkeep::clock::ServerClock::new(std::sync::Arc::new(sfkeep::clock::SystemClock));
        let ep = sfkeep::grant::TokenEndpoint::new(&i.login_url, clock)
            .map_err(|e| CliError::unexpected(e.to_string()))?;
        let r = sfkeep::grant::soap_login::request(
            &ep,
            &i.username,
            &sfkeep::secret::Password::new(i.password.clone()),
            Some(&sfkeep::secret::SecurityToken::new(
                i.security_token.clone(),
            )),
            sfkeep::client::DEFAULT_API_VERSION,
        )
        .await
        .map_err(|e| CliError::unexpected(format!("the naive client's login failed: {e}")))?;
        Ok(Self {
            session_id: r.access_token.expose_secret().to_owned(),
            instance_url: r.instance_url,
            http: reqwest::Client::new(),
            first_failure: None,
        })
    }

    /// One query with the cached session; a short verdict for the timeline.
    pub async fn try_call(&mut self, _org: &DemoOrg) -> String {
        if self.first_failure.is_some() {
            // Dead since its first failure, with no way back: that row said so once.
            return "✗".into();
        }
        let url = format!(
            "{}/services/data/v{}/query?q=SELECT+Id+FROM+Account+LIMIT+1",
            self.instance_url,
            sfkeep::client::DEFAULT_API_VERSION
        );
        match self
            .http
            .get(&url)
            .bearer_auth(&self.session_id)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => "✓ ok".into(),
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                let code = if body.contains("INVALID_SESSION_ID") {
                    "INVALID_SESSION_ID".to_owned()
                } else {
                    format!("HTTP {status}")
                };
                self.first_failure = Some(code.clone());
                format!("✗ {code}")
            }
            Err(e) => {
                let mut cell = format!("✗ {e}");
                if cell.chars().count() > 20 {
                    cell = cell.chars().take(19).collect::<String>() + "…";
                }
                cell
            }
        }
    }
}
