//! Test support shared by every crate's tests (a dev-dependency only):
//! in-memory fakes of the ports, and one contract suite per port that every adapter
//! must pass, so the fakes and the real adapters behave the same.

#![expect(
    clippy::missing_panics_doc,
    reason = "fixtures and contract suites panic on purpose: a failed step is a failed test"
)]

pub mod audit;
pub mod auth_db;
pub mod files_db;
pub mod media_store;
pub mod object_store;
