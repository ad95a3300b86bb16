//! A protocol-level fake device (being built).
