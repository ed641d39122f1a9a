//! End-to-end tests: one binary, the real server on port 0 per test.

mod auth;
mod better_auth;
mod better_auth_postgres;
mod browser;
mod files;
mod hardening;
mod http_layers;
mod media_lifecycle;
mod multipart;
mod ops;
mod postgres;
mod postgres_nodes;
mod presign_flow;
mod security;
mod storage;
mod validation;
mod write_races;
