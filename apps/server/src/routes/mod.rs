pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod media;
pub(crate) mod ops;
pub(crate) mod storage;
pub(crate) mod token;
pub(crate) mod ui;
