//! Who may call, read from in-memory views only. Virtual keys now; budgets admission and rate
//! limits join here, reading the views projections keep current.

mod keys;

pub use keys::{KeyStore, hash_key};
