//! End-to-end tests: one binary, the real server on port 0 per test.

mod auth;
mod better_auth;
mod browser;
mod files;
mod http_layers;
mod media_lifecycle;
mod ops;
mod presign_flow;
mod storage;
mod validation;
