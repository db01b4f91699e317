//! How the operator authenticates to Prometheus: a bearer token or basic auth, read from files
//! (mounted Secrets), and a CA bundle for a Prometheus behind a private CA.
//!
//! The files are read at every query, so a rotated Secret takes effect without a restart.

use std::path::{Path, PathBuf};

use base64::Engine;
use reqwest::header::HeaderValue;

use super::prometheus::QueryError;

#[derive(Clone, Debug, Default)]
pub struct PrometheusAuth {
    /// File holding the token sent as `Authorization: Bearer <token>`.
    pub bearer_token_file: Option<PathBuf>,
    pub basic: Option<BasicAuth>,
    /// PEM bundle trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct BasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

impl PrometheusAuth {
    /// The `Authorization` header to send, if any.
    pub fn header(&self) -> Result<Option<HeaderValue>, QueryError> {
        let value = match (&self.bearer_token_file, &self.basic) {
            (Some(file), _) => format!("Bearer {}", read_secret(file)?),
            (None, Some(basic)) => {
                let password = read_secret(&basic.password_file)?;
                let pair = format!("{}:{password}", basic.username);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            (None, None) => return Ok(None),
        };
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            QueryError::Other(
                "the Prometheus credentials hold characters not allowed in an HTTP header".into(),
            )
        })?;
        header.set_sensitive(true);
        Ok(Some(header))
    }
}

/// A credential file's content without the trailing newline editors and `kubectl create secret
/// --from-file` leave.
fn read_secret(file: &Path) -> Result<String, QueryError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        QueryError::Other(format!(
            "cannot read the Prometheus credential file {}: {e}",
            file.display()
        ))
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_file(name: &str, content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("sluice-auth-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn bearer_token_is_read_from_its_file_without_the_newline() {
        let auth = PrometheusAuth {
            bearer_token_file: Some(secret_file("token", "s3cret\n")),
            ..PrometheusAuth::default()
        };
        let header = auth.header().unwrap().unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer s3cret");
        assert!(header.is_sensitive());
    }

    #[test]
    fn basic_auth_encodes_user_and_password() {
        let auth = PrometheusAuth {
            basic: Some(BasicAuth {
                username: "sluice".into(),
                password_file: secret_file("password", "pa55"),
            }),
            ..PrometheusAuth::default()
        };
        // base64("sluice:pa55")
        assert_eq!(
            auth.header().unwrap().unwrap().to_str().unwrap(),
            "Basic c2x1aWNlOnBhNTU="
        );
    }

    #[test]
    fn no_credentials_send_no_header_and_a_missing_file_is_named() {
        assert!(PrometheusAuth::default().header().unwrap().is_none());
        let auth = PrometheusAuth {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..PrometheusAuth::default()
        };
        let error = auth.header().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/token"), "{error}");
    }
}
