//! # edge-gateway
//!
//! # Layout
//!
//! (being built)

pub mod enrollment;
