//! Time, injected.
