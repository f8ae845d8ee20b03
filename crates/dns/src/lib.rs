//! Cluster DNS (being built).
