pub mod health;
pub mod media;
pub mod ops;
pub mod token;
pub mod ui;
