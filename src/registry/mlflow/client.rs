//! The calls fti-serve makes to an MLflow tracking server, over its REST API (2.0 paths):
//! a registered model's aliases, a version's artifact location, listing and downloading
//! artifacts through the server's artifact proxy (`mlflow-artifacts:`), and setting an
//! alias. Every answer is size-bounded before it is read; errors name the call and carry
//! MLflow's own `error_code`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::config::MlflowAuth;
use crate::secret::redact_url;

/// The largest JSON answer read from MLflow (an alias list, an artifact listing).
const MAX_JSON_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum MlflowError {
    /// MLflow could not be reached or did not answer in time.
    #[error("MLflow at {uri} is unreachable ({call}): {message}")]
    Unreachable { uri: String, call: &'static str, message: String },
    /// MLflow answered that the model or version does not exist.
    #[error("MLflow: {message}")]
    NotFound { message: String },
    /// MLflow refused the call (auth, a bad argument) or answered something unreadable.
    #[error("MLflow {call} failed: {message}")]
    Refused { call: &'static str, message: String },
}

/// One alias of a registered model, as MLflow lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AliasEntry {
    pub alias: String,
    #[serde(deserialize_with = "version_number")]
    pub version: u64,
}

/// MLflow sends version numbers as strings.
fn version_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| serde::de::Error::custom(format!("version {text:?} is not a number")))
}

/// One entry of an artifact listing; `path` is relative to the listed directory.
#[derive(Debug, Clone, Deserialize)]
pub struct ArtifactFile {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default, deserialize_with = "optional_size")]
    pub file_size: Option<u64>,
}

/// MLflow sends sizes as numbers or as strings, depending on the version.
fn optional_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Number(n)) => Ok(Some(n)),
        Some(Size::Text(t)) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A client of one tracking server.
#[derive(Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    /// The tracking URI without a trailing `/`.
    base: String,
    auth: MlflowAuth,
    timeout: Duration,
}

impl std::fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowClient").field("uri", &self.uri()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RegisteredModelAnswer {
    registered_model: RegisteredModel,
}

#[derive(Deserialize)]
struct RegisteredModel {
    #[serde(default)]
    aliases: Vec<AliasEntry>,
}

#[derive(Deserialize)]
struct DownloadUri {
    artifact_uri: String,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: Run,
}

#[derive(Deserialize)]
struct Run {
    info: RunInfo,
}

#[derive(Deserialize)]
struct RunInfo {
    artifact_uri: String,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    files: Vec<ArtifactFile>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

impl MlflowClient {
    pub fn new(tracking_uri: &str, auth: MlflowAuth, timeout: Duration) -> Result<MlflowClient, String> {
        // The TLS stack's crypto (ring, as for rediss://); installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the MLflow client: {e}"))?;
        Ok(MlflowClient { http, base: tracking_uri.trim_end_matches('/').to_string(), auth, timeout })
    }

    /// The tracking URI, without credentials: for logs, errors and readiness.
    pub fn uri(&self) -> String {
        redact_url(&self.base)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            MlflowAuth::None => builder,
            MlflowAuth::Bearer(token) => builder.bearer_auth(token.expose()),
            MlflowAuth::Basic { username, password } => builder.basic_auth(username, Some(password.expose())),
        }
    }

    fn unreachable(&self, call: &'static str, e: reqwest::Error) -> MlflowError {
        // reqwest's message can carry the URL; ours already names the server.
        let message = if e.is_timeout() {
            format!("no answer within {} ms", self.timeout.as_millis())
        } else if e.is_connect() {
            "connection refused or failed".to_string()
        } else {
            e.without_url().to_string()
        };
        MlflowError::Unreachable { uri: self.uri(), call, message }
    }

    /// Sends a request with the call deadline and turns MLflow's error answers into
    /// [`MlflowError`]s.
    async fn send(
        &self,
        call: &'static str,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, MlflowError> {
        let response = builder.send().await.map_err(|e| self.unreachable(call, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_bounded(response, 64 << 10).await.unwrap_or_default();
        let parsed: Option<ErrorAnswer> = serde_json::from_slice(&body).ok();
        let message = match &parsed {
            Some(e) if !e.message.is_empty() => format!("{} ({})", e.message, e.error_code),
            _ => format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
        };
        if parsed.as_ref().is_some_and(|e| e.error_code == "RESOURCE_DOES_NOT_EXIST")
            || status == reqwest::StatusCode::NOT_FOUND
        {
            return Err(MlflowError::NotFound { message });
        }
        if status.is_server_error() {
            return Err(MlflowError::Unreachable { uri: self.uri(), call, message });
        }
        Err(MlflowError::Refused { call, message })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, MlflowError> {
        let builder = self.request(reqwest::Method::GET, path).query(query).timeout(self.timeout);
        let response = self.send(call, builder).await?;
        let body = read_bounded(response, MAX_JSON_BYTES)
            .await
            .map_err(|message| MlflowError::Refused { call, message })?;
        serde_json::from_slice(&body)
            .map_err(|e| MlflowError::Refused { call, message: format!("unreadable answer: {e}") })
    }

    /// The aliases of a registered model.
    pub async fn aliases(&self, model: &str) -> Result<Vec<AliasEntry>, MlflowError> {
        let answer: RegisteredModelAnswer = self
            .get_json("registered-models/get", "/api/2.0/mlflow/registered-models/get", &[("name", model)])
            .await?;
        Ok(answer.registered_model.aliases)
    }

    /// Where a version's artifacts are, as an artifact path on the server's proxy.
    pub async fn artifact_path(&self, model: &str, version: u64) -> Result<String, MlflowError> {
        let version = version.to_string();
        let answer: DownloadUri = self
            .get_json(
                "model-versions/get-download-uri",
                "/api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", model), ("version", &version)],
            )
            .await?;
        // A version registered from `runs:/<run>/<path>` keeps that form here: the run's
        // artifact root resolves it.
        let uri = match answer.artifact_uri.strip_prefix("runs:/") {
            Some(rest) => {
                let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
                let run: RunAnswer =
                    self.get_json("runs/get", "/api/2.0/mlflow/runs/get", &[("run_id", run_id)]).await?;
                format!("{}/{path}", run.run.info.artifact_uri.trim_end_matches('/'))
            }
            None => answer.artifact_uri,
        };
        proxy_path(&uri)
            .map_err(|message| MlflowError::Refused { call: "model-versions/get-download-uri", message })
    }

    /// The entries of one artifact directory.
    pub async fn list(&self, path: &str) -> Result<Vec<ArtifactFile>, MlflowError> {
        let listing: Listing = self
            .get_json("mlflow-artifacts list", "/api/2.0/mlflow-artifacts/artifacts", &[("path", path)])
            .await?;
        Ok(listing.files)
    }

    /// Downloads one artifact into `dest`, refusing more than `limit` bytes. Returns the
    /// number of bytes written.
    pub async fn download(&self, path: &str, dest: &Path, limit: u64) -> Result<u64, MlflowError> {
        const CALL: &str = "mlflow-artifacts download";
        let url_path = format!("/api/2.0/mlflow-artifacts/artifacts/{}", encode_path(path));
        let mut response = self.send(CALL, self.request(reqwest::Method::GET, &url_path)).await?;
        let io = |e: std::io::Error| MlflowError::Refused {
            call: CALL,
            message: format!("{}: {e}", dest.display()),
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(CALL, e))? {
            written += chunk.len() as u64;
            if written > limit {
                return Err(MlflowError::Refused {
                    call: CALL,
                    message: format!("{path} is larger than the {limit} bytes allowed"),
                });
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(written)
    }

    /// Points `alias` of `model` at `version`.
    pub async fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), MlflowError> {
        let body = serde_json::json!({ "name": model, "alias": alias, "version": version.to_string() });
        let builder = self
            .request(reqwest::Method::POST, "/api/2.0/mlflow/registered-models/alias")
            .json(&body)
            .timeout(self.timeout);
        self.send("registered-models/alias", builder).await.map(drop)
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("answer larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `mlflow-artifacts:/1/abc/artifacts/model` (or `mlflow-artifacts://host:port/...`) ->
/// `1/abc/artifacts/model`, the path the server's artifact proxy serves it under.
pub fn proxy_path(artifact_uri: &str) -> Result<String, String> {
    let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
        return Err(format!(
            "artifact location {artifact_uri:?} is not served by the tracking server; run `mlflow server` \
             with its artifact proxy (--serve-artifacts, the default, and --artifacts-destination)"
        ));
    };
    let path = match rest.strip_prefix("//") {
        // An authority names the server; the path after it is what the proxy serves.
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    let path = path.trim_matches('/');
    if path.is_empty() || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("artifact location {artifact_uri:?} is not a usable path"));
    }
    Ok(path.to_string())
}

/// Percent-encodes each segment of an artifact path for a URL path.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_to_proxy_paths() {
        assert_eq!(
            proxy_path("mlflow-artifacts:/1/abc/artifacts/model").as_deref(),
            Ok("1/abc/artifacts/model")
        );
        assert_eq!(
            proxy_path("mlflow-artifacts://127.0.0.1:5000/0/r/artifacts/model/").as_deref(),
            Ok("0/r/artifacts/model")
        );
        for bad in ["s3://bucket/model", "/tmp/model", "mlflow-artifacts:/", "mlflow-artifacts:/a/../b"] {
            assert!(proxy_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_encoded_per_byte() {
        assert_eq!(encode_path("1/a b/model.onnx"), "1/a%20b/model.onnx");
        assert_eq!(encode_path("x?y#z"), "x%3Fy%23z");
    }

    #[test]
    fn listings_accept_numbers_and_strings_for_sizes() {
        let listing: Listing = serde_json::from_str(
            r#"{"files":[{"path":"model.onnx","is_dir":false,"file_size":12},
                          {"path":"manifest.toml","is_dir":false,"file_size":"7"},
                          {"path":"extra","is_dir":true}]}"#,
        )
        .expect("parses");
        let sizes: Vec<_> = listing.files.iter().map(|f| f.file_size).collect();
        assert_eq!(sizes, [Some(12), Some(7), None]);
        let empty: Listing = serde_json::from_str("{}").expect("parses");
        assert!(empty.files.is_empty());
    }
}
