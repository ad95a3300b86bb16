//! Kubernetes API server emulator (being built).
