//! keyward: API-key management that hunts for its own keys where they must
//! never be, and revokes them when they leak.
//!
//! Data flows one way: [`sources`] produce bytes, [`engine`] turns bytes into
//! findings, and later stages decide what a finding means. The engine never
//! knows where bytes came from; sources never decide what a secret is.

pub mod config;
pub mod engine;
pub mod keys;
pub mod metrics;
pub mod response;
pub mod server;
pub mod service;
pub mod sources;
pub mod store;
pub mod time;
