//! # edge-agent
//!
//! # Layout
//!
//! (being built)
