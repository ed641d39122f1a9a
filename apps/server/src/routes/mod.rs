pub mod health;
pub mod media;
pub mod token;
