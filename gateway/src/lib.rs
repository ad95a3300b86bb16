//! # edge-gateway
//!
//! # Layout
//!
//! (being built)
