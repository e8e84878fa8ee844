//! Virtual keys, held and compared as SHA-256 hashes only. The key itself is never stored,
//! logged or published; events carry the key's id and labels.

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::KeySpec;
use crate::events::Principal;

/// SHA-256 of a presented key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The live set of keys, swappable as a whole (admin events will replace it at run time).
pub struct KeyStore {
    by_hash: ArcSwap<HashMap<[u8; 32], Arc<Principal>>>,
}

impl KeyStore {
    pub fn new(keys: &[KeySpec]) -> Self {
        let map = keys
            .iter()
            .map(|k| {
                (
                    k.hash,
                    Arc::new(Principal {
                        key_id: k.id.clone(),
                        user: k.user.clone(),
                        team: k.team.clone(),
                        project: k.project.clone(),
                    }),
                )
            })
            .collect();
        Self {
            by_hash: ArcSwap::from_pointee(map),
        }
    }

    /// The principal for a bearer token, if it is a known key.
    pub fn authenticate(&self, bearer: &str) -> Option<Arc<Principal>> {
        self.by_hash.load().get(&hash_key(bearer)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hash_authenticates() {
        let store = KeyStore::new(&[KeySpec {
            id: "k1".into(),
            hash: hash_key("sk-abc"),
            user: Some("u".into()),
            team: None,
            project: None,
        }]);
        assert_eq!(store.authenticate("sk-abc").unwrap().key_id, "k1");
        assert!(store.authenticate("sk-abd").is_none());
        // the well-known SHA-256 test vector, so hashes made with other tools match
        assert_eq!(
            hex::encode(hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
