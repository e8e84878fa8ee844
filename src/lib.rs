//! Switchyard: an event-sourced LLM gateway.
//!
//! Modules in the order a request flows through them:
//! - [`edge`]: axum routers; auth, body limits, the OpenAI and Anthropic surfaces, the request
//!   pipeline they share, errors as OpenAI- or Anthropic-shaped JSON.
//! - [`governance`]: virtual keys (hash lookup in memory), budget admission (reserve from this
//!   instance's slices in memory, settle at completion).
//! - [`guardrails`]: personal data and credentials found in one pass over a prompt or answer.
//! - [`routing`]: public model → ordered deployments, and the attempt loop.
//! - [`providers`]: the `Provider` seam and its adapters (OpenAI and every OpenAI-compatible
//!   server, Azure OpenAI, Anthropic, Gemini, Bedrock).
//! - [`events`]: the vocabulary published for every request, response and spend.
//! - [`publish`]: the non-blocking sink, the JetStream publisher and the on-disk outbox.
//! - [`projections`]: consumers that fold the stream into stores (budgets → redb, audit →
//!   tantivy).
//! - [`ledger`]: budget slices leased from the stream (one subject per budget window, written
//!   with an expected-sequence check), and budget alerts.
//!
//! Around them: [`config`] (TOML → validated), [`secrets`] (provider credentials fetched from
//! their references and kept fresh), [`aws`] (SigV4 signing), [`app`] (wiring and task
//! supervision), [`telemetry`] (logs, metrics). The mock upstream for tests, benchmarks and the quickstart is
//! its own crate, `crates/switchyard-mock`.

pub mod app;
pub mod aws;
pub mod cache;
pub mod config;
pub mod edge;
pub mod events;
pub mod governance;
pub mod guardrails;
pub mod ledger;
pub mod projections;
pub mod providers;
pub mod publish;
pub mod routing;
pub mod secrets;
pub mod telemetry;
