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
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

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

/// How many verified secrets [`HashMemo`] remembers before it starts over.
const MEMO_CAPACITY: usize = 65_536;

/// The SHA-256 of secrets that matched a key, remembered under a keyed 128-bit hash of the
/// secret, so that a key presented again is checked in tens of nanoseconds instead of the
/// microsecond SHA-256 takes on a CPU without SHA instructions. The hash keys are random per
/// process and never leave it, so the remembered entries say nothing outside it, and a
/// secret that never matched is never remembered (an attacker cannot grow the memo).
pub struct HashMemo {
    keys: [RandomState; 2],
    seen: RwLock<HashMap<u128, [u8; 32]>>,
}

impl Default for HashMemo {
    fn default() -> Self {
        Self {
            keys: [RandomState::new(), RandomState::new()],
            seen: RwLock::default(),
        }
    }
}

/// A secret as [`HashMemo`] knows it: its SHA-256, and whether it was remembered.
pub struct Presented {
    pub sha256: [u8; 32],
    mac: u128,
    remembered: bool,
}

impl HashMemo {
    /// The SHA-256 of `secret`, from memory when it matched before.
    pub fn hash(&self, secret: &str) -> Presented {
        let [a, b] = &self.keys;
        let mac = (u128::from(a.hash_one(secret)) << 64) | u128::from(b.hash_one(secret));
        let known = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&mac)
            .copied();
        Presented {
            sha256: known.unwrap_or_else(|| hash_key(secret)),
            mac,
            remembered: known.is_some(),
        }
    }

    /// `p` matched a key: remember its hash.
    pub fn matched(&self, p: &Presented) {
        if p.remembered {
            return;
        }
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MEMO_CAPACITY {
            seen.clear();
        }
        seen.insert(p.mac, p.sha256);
    }
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
    memo: HashMemo,
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
            memo: HashMemo::default(),
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
        let presented = self.memo.hash(token);
        if let Some(c) = self.bootstrap.load().get(&presented.sha256) {
            self.memo.matched(&presented);
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
    fn the_memo_gives_the_sha256_and_remembers_only_what_matched() {
        let memo = HashMemo::default();
        let first = memo.hash("secret-a");
        assert_eq!(first.sha256, hash_key("secret-a"));
        assert!(!first.remembered);
        assert!(!memo.hash("secret-a").remembered, "not matched yet");
        memo.matched(&first);
        let again = memo.hash("secret-a");
        assert!(again.remembered);
        assert_eq!(again.sha256, hash_key("secret-a"));
        let other = memo.hash("secret-b");
        assert!(!other.remembered);
        assert_eq!(other.sha256, hash_key("secret-b"));
    }

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
