//! Who may call, read from in-memory views only: the bootstrap keys from config and the key
//! directory that follows the stream's admin events; and how much they may spend: budget
//! admission against this instance's leased slices ([`budgets`]). Rate limits join here,
//! reading the views projections keep current.

pub mod budgets;
mod directory;
mod keys;
pub mod rate;

pub use directory::{AuthError, Directory, KeyEntry};
pub use keys::{Caller, KEY_PREFIX, KeyStore, NewKey, hash_key, split_key};

/// Milliseconds since the Unix epoch, the clock key expiry and rotation grace are read against.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This process's id among the instances sharing one NATS (a ULID made at first use), for
/// what instances coordinate through the stream (budget and rate-limit leases).
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| ulid::Ulid::generate().to_string())
}
