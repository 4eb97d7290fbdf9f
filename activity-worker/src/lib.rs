//! The worker of typed, durable activities.
//!
//! Not implemented yet: this crate is the place for polling with execution slots,
//! rate limits, heartbeat throttling, cancellation delivery, graceful shutdown and
//! the workflow executor (see the project's DESIGN.md). Until then, activities run
//! through [`activity_core::TestActivityEnvironment`], and a worker's start-up
//! check of the activity set is [`activity_core::Registry::builder`].
