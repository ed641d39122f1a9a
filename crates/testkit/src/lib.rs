//! Test support shared by every crate's tests (a dev-dependency only):
//! in-memory fakes of the ports, and one contract suite per port that every adapter
//! must pass, so the fakes and the real adapters behave the same.

pub mod audit;
pub mod auth_db;
pub mod files_db;
pub mod media_store;
pub mod object_store;
