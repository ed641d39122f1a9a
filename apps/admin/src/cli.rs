use clap::{Parser, Subcommand};

use crate::commands::{migrate, token};

#[derive(Debug, Parser)]
#[command(
    name = "filegate-admin",
    version,
    about = "filegate administration: database migrations and development tokens"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations of the media database, or show their status.
    Migrate(migrate::Opts),
    /// Mint a development JWT (HS256, Quickback claims) and print it on stdout.
    Token(token::Opts),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Migrate(opts) => migrate::run(opts).await,
            Self::Token(opts) => token::run(opts).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_defaults_to_one_hour() {
        let cli = Cli::try_parse_from(["filegate-admin", "token", "--user", "u1"]).unwrap();
        let Command::Token(opts) = cli.command else {
            panic!("expected token");
        };
        assert_eq!(opts.user, "u1");
        assert_eq!(opts.ttl, std::time::Duration::from_secs(3600));
    }

    #[test]
    fn token_requires_a_user() {
        assert!(Cli::try_parse_from(["filegate-admin", "token"]).is_err());
    }

    #[test]
    fn migrate_parses_status_and_paths() {
        let cli = Cli::try_parse_from([
            "filegate-admin",
            "migrate",
            "--status",
            "--data-dir",
            "/srv/fg",
            "--db",
            "/tmp/x.db",
        ])
        .unwrap();
        let Command::Migrate(opts) = cli.command else {
            panic!("expected migrate");
        };
        assert!(opts.status);
        assert_eq!(opts.db_path(), std::path::Path::new("/tmp/x.db"));
    }
}
