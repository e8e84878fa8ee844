//! Virtual keys: their format, the bootstrap keys from config, and authentication against the
//! key directory. Keys are held and compared as SHA-256 hashes only; the key itself is never
//! stored, logged or published. Events carry the key's id and labels.
//!
//! A key issued at run time reads `sy-<id>-<secret>`: the id is public (it names the key in
//! events, lists and URLs), the secret is 40 random alphanumerics (≈238 bits) shown once.

use arc_swap::ArcSwap;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

use super::directory::{AuthError, Directory};
use crate::config::KeySpec;
use crate::events::Principal;

/// Every issued key starts with this.
pub const KEY_PREFIX: &str = "sy-";
const SECRET_LEN: usize = 40;

/// SHA-256 of a presented key or secret.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh key: its public id, its secret, and the whole key as the client sends it.
pub struct NewKey {
    pub id: String,
    pub secret: String,
}

impl NewKey {
    pub fn generate() -> Self {
        let id = ulid::Ulid::generate().to_string().to_ascii_lowercase();
        Self::with_id(id)
    }

    /// A new secret for an existing key id (rotation).
    pub fn with_id(id: String) -> Self {
        let secret: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(SECRET_LEN)
            .map(char::from)
            .collect();
        Self { id, secret }
    }

    /// `sy-<id>-<secret>`: what the client sends.
    pub fn full(&self) -> String {
        format!("{KEY_PREFIX}{}-{}", self.id, self.secret)
    }

    pub fn secret_sha256(&self) -> String {
        hex::encode(hash_key(&self.secret))
    }
}

/// The id and secret of an issued key, or `None` when `token` does not have that shape.
pub fn split_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('-')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Who a request is from: the principal recorded in its events and the models it may call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    /// Public model names the key may call; `None` allows every model.
    pub models: Option<Arc<[String]>>,
}

impl Caller {
    pub fn may_use(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

/// The keys a request may present: bootstrap keys from config (by hash of the whole key) and
/// the directory of issued keys that follows the stream.
pub struct KeyStore {
    bootstrap: ArcSwap<HashMap<[u8; 32], Caller>>,
    pub directory: Arc<Directory>,
}

impl KeyStore {
    pub fn new(keys: &[KeySpec], directory: Arc<Directory>) -> Self {
        let map = keys
            .iter()
            .map(|k| {
                (
                    k.hash,
                    Caller {
                        principal: Arc::new(Principal {
                            key_id: k.id.clone(),
                            user: k.user.clone(),
                            team: k.team.clone(),
                            project: k.project.clone(),
                        }),
                        models: None,
                    },
                )
            })
            .collect();
        Self {
            bootstrap: ArcSwap::from_pointee(map),
            directory,
        }
    }

    /// The caller presenting `token`, or why it is refused. An issued key is looked up by its
    /// id; anything else (or an id the directory does not know) by the hash of the whole key.
    pub fn authenticate(&self, token: &str, now_ms: u64) -> Result<Caller, AuthError> {
        if let Some((id, secret)) = split_key(token) {
            match self.directory.authenticate(id, secret, now_ms) {
                Err(AuthError::Unknown) => {}
                other => return other,
            }
        }
        if let Some(c) = self.bootstrap.load().get(&hash_key(token)) {
            return Ok(c.clone());
        }
        // An issued key the directory does not know yet, before it has read the stream: say
        // so rather than call a valid key invalid.
        if split_key(token).is_some() && !self.directory.is_ready() {
            return Err(AuthError::Loading);
        }
        Err(AuthError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_hash_authenticates() {
        let store = KeyStore::new(
            &[KeySpec {
                id: "k1".into(),
                hash: hash_key("sk-abc"),
                user: Some("u".into()),
                team: None,
                project: None,
            }],
            Arc::new(Directory::default()),
        );
        let c = store.authenticate("sk-abc", 0).unwrap();
        assert_eq!(c.principal.key_id, "k1");
        assert!(c.may_use("anything"));
        assert!(matches!(
            store.authenticate("sk-abd", 0),
            Err(AuthError::Unknown)
        ));
        // the well-known SHA-256 test vector, so hashes made with other tools match
        assert_eq!(
            hex::encode(hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn issued_keys_split_into_id_and_secret() {
        let k = NewKey::generate();
        let full = k.full();
        assert_eq!(split_key(&full), Some((k.id.as_str(), k.secret.as_str())));
        assert_eq!(k.secret.len(), SECRET_LEN);
        assert!(k.secret.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(split_key("sk-abc"), None);
        assert_eq!(split_key("sy--x"), None);
        assert_eq!(split_key("sy-id-"), None);
        assert_ne!(NewKey::generate().secret, k.secret);
    }
}
