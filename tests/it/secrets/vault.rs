//! A small Vault server for the tests, following Vault's documented KV version 2 read API
//! (https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version):
//! `GET /v1/{mount}/data/{path}` with `X-Vault-Token` answers
//! `{"data":{"data":{…},"metadata":{"version":N,…}}}` for the latest version; a missing or wrong
//! token gets 403 `{"errors":["permission denied"]}`, an unknown path 404 `{"errors":[]}`, a
//! deleted latest version 404 with its metadata, a sealed server 503. Writes go through
//! [`Vault::put`], which bumps the version as Vault does. No HashiCorp Vault installs from the
//! package registries this project uses, hence this stand-in.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Store {
    token: String,
    /// Required `X-Vault-Namespace`, when set.
    namespace: Option<String>,
    sealed: bool,
    /// `mount/path` → versions (1-based), `None` once deleted.
    secrets: HashMap<String, Vec<Option<HashMap<String, String>>>>,
    reads: u64,
}

pub struct Vault {
    pub addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    stop: CancellationToken,
}

impl Vault {
    pub async fn start(token: &str) -> Self {
        let store = Arc::new(Mutex::new(Store {
            token: token.to_owned(),
            ..Store::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .route("/v1/{*rest}", axum::routing::get(read))
            .with_state(Arc::clone(&store));
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
        });
        Vault { addr, store, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a new version of `mount/path`; returns its number.
    pub fn put(&self, at: &str, data: &[(&str, &str)]) -> usize {
        let mut store = self.store.lock().unwrap();
        let versions = store.secrets.entry(at.to_owned()).or_default();
        versions.push(Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ));
        versions.len()
    }

    /// Soft-delete the latest version of `mount/path`.
    pub fn delete_latest(&self, at: &str) {
        let mut store = self.store.lock().unwrap();
        if let Some(last) = store.secrets.get_mut(at).and_then(|v| v.last_mut()) {
            *last = None;
        }
    }

    pub fn set_sealed(&self, sealed: bool) {
        self.store.lock().unwrap().sealed = sealed;
    }

    pub fn set_token(&self, token: &str) {
        self.store.lock().unwrap().token = token.to_owned();
    }

    pub fn require_namespace(&self, namespace: &str) {
        self.store.lock().unwrap().namespace = Some(namespace.to_owned());
    }

    /// Reads answered (any status).
    pub fn reads(&self) -> u64 {
        self.store.lock().unwrap().reads
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn errors(status: StatusCode, errors: &[&str]) -> Response {
    (status, Json(json!({ "errors": errors }))).into_response()
}

async fn read(
    State(store): State<Arc<Mutex<Store>>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut store = store.lock().unwrap();
    store.reads += 1;
    if store.sealed {
        return errors(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    let given = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if given("x-vault-token") != Some(store.token.as_str()) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    if store.namespace.is_some() && given("x-vault-namespace") != store.namespace.as_deref() {
        return errors(StatusCode::NOT_FOUND, &[]);
    }
    // `{mount}/data/{path}`: KV v2 puts `data/` between the mount and the secret's path.
    let Some((mount, path)) = rest.split_once("/data/") else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let Some(versions) = store.secrets.get(&format!("{mount}/{path}")) else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let version = versions.len();
    let metadata = |deleted: bool| {
        json!({
            "created_time": "2018-03-22T02:24:06.945319214Z",
            "custom_metadata": null,
            "deletion_time": if deleted { "2018-03-22T02:36:43.986212308Z" } else { "" },
            "destroyed": false,
            "version": version,
        })
    };
    match versions.last() {
        Some(Some(data)) => Json(json!({
            "request_id": "0b6a7ca3-2a3d-1c02-4e0f-1c3bdfd4a4d8",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": { "data": data, "metadata": metadata(false) },
            "wrap_info": null,
            "warnings": null,
            "auth": null,
        }))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "data": { "data": null, "metadata": metadata(true) } })),
        )
            .into_response(),
    }
}
