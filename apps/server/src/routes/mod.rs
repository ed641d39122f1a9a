pub mod files;
pub mod health;
pub mod media;
pub mod ops;
pub mod storage;
pub mod token;
pub mod ui;
