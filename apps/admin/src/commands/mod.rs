//! One module per subcommand, each with its `Opts` and `run`.

pub mod migrate;
pub mod token;

use std::path::PathBuf;

/// Where the server keeps its state; shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirOpts {
    /// The server's data directory.
    #[arg(
        long = "data-dir",
        env = "FILEGATE_DATA_DIR",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
}
