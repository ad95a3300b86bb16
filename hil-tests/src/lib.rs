//! # edge-hil-tests
//!
//! # Layout
//!
//! (being built)
