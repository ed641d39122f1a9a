//! What the admin binary's reconcile and purge tests share.

use std::path::Path;
use std::process::Command;

/// The real `filegate-admin` on `data_dir`'s embedded defaults: the settings that could
/// point it at another configuration, bucket or storage are taken out of the environment
/// the tests run in.
pub(crate) fn admin(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-admin"));
    for var in [
        "FILEGATE_CONFIG",
        "FILEGATE_BUCKET",
        "FILEGATE_PROJECT",
        "FILEGATE_MULTIPART_MAX_AGE",
        "R2_ACCOUNT_ID",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
        "R2_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("FILEGATE_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    cmd
}
