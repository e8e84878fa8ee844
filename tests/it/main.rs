#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! Integration tests: real nats-server, real HTTP, real files. One binary, one module per area.

mod audit;
mod budgets;
mod cache;
mod chat;
mod cluster;
mod conformance;
mod connections;
mod disconnect;
mod durability;
mod errors;
mod files;
mod guardrails;
mod harness;
mod keys;
mod process;
mod providers;
mod ratelimits;
mod reliability;
mod sdk;
mod secrets;
mod spend;
mod validation;
