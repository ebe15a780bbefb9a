//! `force://CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN@INSTANCE`, the sfdx auth URL that
//! `sf org display --verbose` prints: parsed without ever echoing a part of it.

use sfkeep::secret::{ClientSecret, RefreshToken};

use crate::error::{CliError, CliResult};

/// The parts of an sfdx auth URL (`force://clientId:clientSecret:refreshToken@instance`).
#[derive(Clone, Debug)]
pub struct SfdxAuth {
    /// Consumer key (`PlatformCLI` for the sf CLI's own app).
    pub client_id: String,
    /// Consumer secret; empty in the URL means none.
    pub client_secret: Option<ClientSecret>,
    /// The refresh token.
    pub refresh_token: RefreshToken,
    /// The instance, as a URL (https, or http for loopback hosts).
    pub login_url: String,
}

/// Parses an sfdx auth URL. Errors say what is malformed, never echo any part.
pub fn parse_sfdx_url(raw: &str) -> CliResult<SfdxAuth> {
    let bad = |what: &str| {
        CliError::usage(format!(
            "the sfdx auth URL is malformed: {what}. Expected force://CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN@INSTANCE (as printed by `sf org display --verbose`); the secret may be empty."
        ))
    };
    let raw = raw.trim();
    let rest = raw
        .strip_prefix("force://")
        .ok_or_else(|| bad("it does not start with force://"))?;
    let (creds, instance) = rest
        .rsplit_once('@')
        .ok_or_else(|| bad("there is no @ before the instance"))?;
    let mut parts = creds.splitn(3, ':');
    let (Some(client_id), Some(secret), Some(refresh)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("it needs three parts separated by `:` before the @"));
    };
    if client_id.is_empty() {
        return Err(bad("the client id is empty"));
    }
    if refresh.is_empty() {
        return Err(bad("the refresh token is empty"));
    }
    let ok_chars = |s: &str| s.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if !ok_chars(client_id) || !ok_chars(secret) || !ok_chars(refresh) {
        return Err(bad("a part contains whitespace"));
    }
    let instance = instance.trim_end_matches('/');
    if instance.is_empty() {
        return Err(bad("the instance is empty"));
    }
    let login_url = if instance.contains("://") {
        instance.to_owned()
    } else {
        let host = instance.split(':').next().unwrap_or("");
        let loopback =
            host == "localhost" || host.starts_with("127.") || instance.starts_with("[::1]");
        if loopback {
            format!("http://{instance}")
        } else {
            format!("https://{instance}")
        }
    };
    sfkeep::http::check_url("the sfdx URL's instance", &login_url)
        .map_err(|_| bad("the instance is not a usable https host"))?;
    Ok(SfdxAuth {
        client_id: client_id.to_owned(),
        client_secret: (!secret.is_empty()).then(|| ClientSecret::new(secret)),
        refresh_token: RefreshToken::new(refresh),
        login_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdx_url_parses() {
        let a =
            parse_sfdx_url("force://PlatformCLI::5Aep861abc.def@myorg.my.salesforce.com").unwrap();
        assert_eq!(a.client_id, "PlatformCLI");
        assert!(a.client_secret.is_none());
        assert_eq!(a.refresh_token.expose_secret(), "5Aep861abc.def");
        assert_eq!(a.login_url, "https://myorg.my.salesforce.com");

        let a = parse_sfdx_url("force://3MVG9x:s3cr3t:5Aep:with:colons@127.0.0.1:8080").unwrap();
        assert_eq!(a.client_secret.unwrap().expose_secret(), "s3cr3t");
        assert_eq!(a.refresh_token.expose_secret(), "5Aep:with:colons");
        assert_eq!(a.login_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_sfdx_urls_never_echo_parts() {
        for raw in [
            "https://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@host",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE",
            "force://3MVG9x:s3cr3tvalue@host",
            "force://:s3cr3tvalue:5AepTOKENVALUE@host",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@http://remote.example.com",
        ] {
            let e = parse_sfdx_url(raw).unwrap_err();
            assert_eq!(e.exit, crate::exit::Exit::Usage);
            assert!(!e.message.contains("s3cr3tvalue"), "{}", e.message);
            assert!(!e.message.contains("5AepTOKENVALUE"), "{}", e.message);
        }
    }
}
