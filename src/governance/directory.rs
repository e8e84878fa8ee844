//! The key directory: every issued key and the limits of every scope, folded from the admin
//! events of the stream. Each instance keeps its own copy by following the stream, so a key
//! issued or revoked on one instance works or stops on every other as soon as the event arrives.
//!
//! Requests read it through one `ArcSwap` load; the follower replaces the snapshot once per
//! batch of events. Applying is a pure fold over events (time decisions — expiry, a rotated
//! secret's grace — are made when a key is presented), so a replay from sequence 1 builds the
//! same directory as the live one.

use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::keys::{Caller, HashMemo};
use crate::events::{Envelope, Event, KeyIssued, Limits, Principal, Scope, ScopeKind};

/// Why a presented key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No such key, or the secret does not match.
    Unknown,
    Expired,
    Revoked,
    /// The directory has not read the stream yet, so an issued key cannot be checked.
    Loading,
}

/// One issued key as the directory knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    secret: [u8; 32],
    /// The secret before the last rotation, and until when it still works.
    previous: Option<([u8; 32], u64)>,
    pub caller: Caller,
    pub metadata: BTreeMap<String, String>,
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub rotated_at_ms: Option<u64>,
    pub revoked_at_ms: Option<u64>,
    pub revoke_reason: Option<String>,
    /// A KeyExpired event for this key has been seen.
    pub expiry_recorded: bool,
}

impl PartialEq for Caller {
    fn eq(&self, other: &Self) -> bool {
        self.principal == other.principal && self.models == other.models
    }
}

impl KeyEntry {
    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    /// Until when the secret before the last rotation works, if one does at `now_ms`.
    pub fn previous_valid_until(&self, now_ms: u64) -> Option<u64> {
        self.previous.map(|(_, u)| u).filter(|u| *u > now_ms)
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|e| now_ms >= e)
    }

    /// `active`, `expired` or `revoked` at `now_ms`.
    pub fn status(&self, now_ms: u64) -> &'static str {
        if self.revoked_at_ms.is_some() {
            "revoked"
        } else if self.is_expired(now_ms) {
            "expired"
        } else {
            "active"
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
struct State {
    keys: HashMap<String, Arc<KeyEntry>>,
    limits: HashMap<Scope, Arc<Limits>>,
}

/// The live directory. See the module docs.
#[derive(Default)]
pub struct Directory {
    state: ArcSwap<State>,
    /// Last applied stream sequence.
    applied: AtomicU64,
    /// Set once the follower has read every admin event that was in the stream when it started.
    ready: AtomicBool,
    /// Woken after each applied batch (admin calls wait for their own event).
    applied_signal: tokio::sync::Notify,
    /// Secrets presented before, so a key is not hashed again on every request.
    memo: HashMemo,
}

impl Directory {
    /// Fold a batch of admin events (with their stream sequences) into the directory. Events at
    /// or below the last applied sequence are skipped, so a redelivery changes nothing.
    pub fn apply(&self, batch: &[(u64, Envelope)]) {
        let from = self.applied.load(Ordering::Acquire);
        let fresh: Vec<_> = batch.iter().filter(|(seq, _)| *seq > from).collect();
        let Some(last) = fresh.last().map(|(s, _)| *s) else {
            return;
        };
        let mut state = State::clone(&self.state.load());
        for (_, env) in fresh {
            fold(&mut state, env);
        }
        self.state.store(Arc::new(state));
        self.applied.store(last, Ordering::Release);
        self.applied_signal.notify_waiters();
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.applied_signal.notify_waiters();
    }

    /// Wait until the event at stream sequence `seq` has been applied, at most `timeout`.
    pub async fn wait_applied(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.applied_signal.notified();
            if self.applied() >= seq {
                return true;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return self.applied() >= seq;
            }
        }
    }

    /// The caller presenting issued key `id` with `secret`, or why it is refused.
    pub fn authenticate(&self, id: &str, secret: &str, now_ms: u64) -> Result<Caller, AuthError> {
        let state = self.state.load();
        let key = state.keys.get(id).ok_or(AuthError::Unknown)?;
        let presented = self.memo.hash(secret);
        let current = presented.sha256 == key.secret;
        let previous = key
            .previous
            .is_some_and(|(h, until)| h == presented.sha256 && now_ms < until);
        if !current && !previous {
            return Err(AuthError::Unknown);
        }
        self.memo.matched(&presented);
        if key.revoked_at_ms.is_some() {
            return Err(AuthError::Revoked);
        }
        if key.is_expired(now_ms) {
            return Err(AuthError::Expired);
        }
        Ok(key.caller.clone())
    }

    pub fn key(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.state.load().keys.get(id).cloned()
    }

    /// Every issued key, oldest first.
    pub fn keys(&self) -> Vec<Arc<KeyEntry>> {
        let mut keys: Vec<_> = self.state.load().keys.values().cloned().collect();
        keys.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        keys
    }

    /// The budgets and rate limits set on `scope`, if any.
    pub fn limits(&self, scope: &Scope) -> Option<Arc<Limits>> {
        self.state.load().limits.get(scope).cloned()
    }

    /// Every scope with limits, sorted.
    pub fn all_limits(&self) -> Vec<(Scope, Arc<Limits>)> {
        let mut all: Vec<_> = self
            .state
            .load()
            .limits
            .iter()
            .map(|(s, l)| (s.clone(), Arc::clone(l)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Keys past their expiry whose KeyExpired event has not been seen yet.
    pub fn expired_unrecorded(&self, now_ms: u64) -> Vec<(String, u64)> {
        self.state
            .load()
            .keys
            .values()
            .filter(|k| !k.expiry_recorded && k.revoked_at_ms.is_none() && k.is_expired(now_ms))
            .filter_map(|k| Some((k.id.clone(), k.expires_at_ms?)))
            .collect()
    }
}

fn parse_hash(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A malformed hash (never written by this gateway) matches no secret: all zeroes is
    // SHA-256 of nothing anyone can find.
    if hex::decode_to_slice(hex_str, &mut out).is_err() {
        out = [0u8; 32];
    }
    out
}

fn issued(e: &KeyIssued, at_ms: u64) -> KeyEntry {
    KeyEntry {
        id: e.key_id.clone(),
        name: e.name.clone(),
        secret: parse_hash(&e.secret_sha256),
        previous: None,
        caller: Caller {
            principal: Arc::new(Principal {
                key_id: e.key_id.clone(),
                user: e.user.clone(),
                team: e.team.clone(),
                project: e.project.clone(),
            }),
            models: (!e.models.is_empty()).then(|| e.models.clone().into()),
        },
        metadata: e.metadata.clone(),
        expires_at_ms: e.expires_at_ms,
        created_at_ms: at_ms,
        rotated_at_ms: None,
        revoked_at_ms: None,
        revoke_reason: None,
        expiry_recorded: false,
    }
}

fn fold(state: &mut State, env: &Envelope) {
    let at = env.at_ms;
    let mut update = |id: &str, f: &dyn Fn(&mut KeyEntry)| {
        if let Some(k) = state.keys.get_mut(id) {
            f(Arc::make_mut(k));
        }
    };
    match &env.event {
        Event::KeyIssued(e) => {
            // Ids are ULIDs made by the issuing instance: a second KeyIssued with the same id
            // can only be a duplicate.
            if !state.keys.contains_key(&e.key_id) {
                state.keys.insert(e.key_id.clone(), Arc::new(issued(e, at)));
                set_limits(state, Scope::new(ScopeKind::Key, &e.key_id), &e.limits);
            }
        }
        Event::KeyRotated(e) => update(&e.key_id, &|k| {
            k.previous = Some((k.secret, e.previous_valid_until_ms));
            k.secret = parse_hash(&e.secret_sha256);
            k.rotated_at_ms = Some(at);
        }),
        Event::KeyRevoked(e) => update(&e.key_id, &|k| {
            if k.revoked_at_ms.is_none() {
                k.revoked_at_ms = Some(at);
                k.revoke_reason = e.reason.clone();
            }
        }),
        Event::KeyExpired(e) => update(&e.key_id, &|k| k.expiry_recorded = true),
        Event::LimitsSet(e) => set_limits(state, e.scope.clone(), &e.limits),
        Event::RequestAccepted(_)
        | Event::CacheFlushed(_)
        | Event::ResponseCompleted(_)
        | Event::SpendRecorded(_)
        | Event::BreakerChanged(_)
        | Event::BudgetLeased(_)
        | Event::BudgetThresholdCrossed(_)
        | Event::RequestRejected(_)
        | Event::AuditAnchored(_) => {}
    }
}

fn set_limits(state: &mut State, scope: Scope, limits: &Limits) {
    if limits.is_empty() {
        state.limits.remove(&scope);
    } else {
        state.limits.insert(scope, Arc::new(limits.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{KeyExpired, KeyRevoked, KeyRotated, LimitsSet, RateLimit};
    use crate::governance::NewKey;
    use ulid::Ulid;

    fn at(ms: u64, event: Event) -> Envelope {
        Envelope {
            id: Ulid::generate(),
            at_ms: ms,
            request_id: Ulid::generate(),
            event,
        }
    }

    fn issue(k: &NewKey, expires_at_ms: Option<u64>, models: &[&str]) -> Event {
        Event::KeyIssued(KeyIssued {
            key_id: k.id.clone(),
            name: "ci".into(),
            secret_sha256: k.secret_sha256(),
            user: Some("ana".into()),
            team: Some("search".into()),
            project: None,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            expires_at_ms,
            limits: Limits {
                budgets: vec![],
                rate: RateLimit {
                    requests_per_minute: Some(600),
                    tokens_per_minute: None,
                },
            },
            metadata: BTreeMap::new(),
        })
    }

    #[test]
    fn a_key_lives_rotates_with_grace_and_is_revoked() {
        let d = Directory::default();
        let k = NewKey::generate();
        d.apply(&[(1, at(1_000, issue(&k, None, &["gpt-4o"])))]);
        let c = d.authenticate(&k.id, &k.secret, 2_000).unwrap();
        assert_eq!(c.principal.team.as_deref(), Some("search"));
        assert!(c.may_use("gpt-4o") && !c.may_use("gpt-4o-mini"));
        assert_eq!(
            d.authenticate(&k.id, "wrong", 2_000),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            d.limits(&Scope::new(ScopeKind::Key, &k.id))
                .unwrap()
                .rate
                .requests_per_minute,
            Some(600)
        );

        let new = NewKey::with_id(k.id.clone());
        d.apply(&[(
            2,
            at(
                3_000,
                Event::KeyRotated(KeyRotated {
                    key_id: k.id.clone(),
                    secret_sha256: new.secret_sha256(),
                    previous_valid_until_ms: 5_000,
                }),
            ),
        )]);
        assert!(d.authenticate(&k.id, &new.secret, 4_000).is_ok());
        assert!(d.authenticate(&k.id, &k.secret, 4_999).is_ok(), "grace");
        assert_eq!(
            d.authenticate(&k.id, &k.secret, 5_000),
            Err(AuthError::Unknown)
        );

        let revoke = at(
            6_000,
            Event::KeyRevoked(KeyRevoked {
                key_id: k.id.clone(),
                reason: None,
            }),
        );
        d.apply(&[(3, revoke.clone())]);
        assert_eq!(
            d.authenticate(&k.id, &new.secret, 7_000),
            Err(AuthError::Revoked)
        );
        // a redelivered event changes nothing
        let before = d.key(&k.id);
        d.apply(&[(3, revoke)]);
        assert_eq!(d.key(&k.id), before);
        assert_eq!(d.applied(), 3);
    }

    #[test]
    fn expiry_is_decided_when_the_key_is_presented() {
        let d = Directory::default();
        let k = NewKey::generate();
        d.apply(&[(1, at(1_000, issue(&k, Some(10_000), &[])))]);
        assert!(d.authenticate(&k.id, &k.secret, 9_999).is_ok());
        assert_eq!(
            d.authenticate(&k.id, &k.secret, 10_000),
            Err(AuthError::Expired)
        );
        assert_eq!(d.expired_unrecorded(10_000), vec![(k.id.clone(), 10_000)]);
        d.apply(&[(
            2,
            at(
                10_500,
                Event::KeyExpired(KeyExpired {
                    key_id: k.id.clone(),
                    expires_at_ms: 10_000,
                }),
            ),
        )]);
        assert!(d.expired_unrecorded(11_000).is_empty());
    }

    #[test]
    fn limits_of_a_scope_are_replaced_and_removed() {
        let d = Directory::default();
        let team = Scope::new(ScopeKind::Team, "search");
        let set = |seq, rpm| {
            (
                seq,
                at(
                    1,
                    Event::LimitsSet(LimitsSet {
                        scope: team.clone(),
                        limits: Limits {
                            budgets: vec![],
                            rate: RateLimit {
                                requests_per_minute: rpm,
                                tokens_per_minute: None,
                            },
                        },
                    }),
                ),
            )
        };
        d.apply(&[set(1, Some(10)), set(2, Some(20))]);
        assert_eq!(d.limits(&team).unwrap().rate.requests_per_minute, Some(20));
        d.apply(&[set(3, None)]);
        assert!(d.limits(&team).is_none());
        assert!(d.all_limits().is_empty());
    }
}
