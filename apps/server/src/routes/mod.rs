pub mod health;
pub mod media;
