//! Device enrollment: fleet CA, device certificates and bundles, revocation, broker configuration (being built).
