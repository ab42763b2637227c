//! Where bytes come from. Sources read and walk; the engine decides what a
//! secret is.

pub mod files;
pub mod git;
