use clap::{Parser, Subcommand};

use crate::commands::{bucket, copy_metadata, migrate, purge, reconcile, stats, token};

#[derive(Debug, Parser)]
#[command(
    name = "filegate-admin",
    version,
    about = "filegate administration: migrations, buckets, reconcile, purge, stats, copying metadata to Postgres and development tokens",
    after_help = "Exit codes: 0 success; 1 error; 2 usage error; 3 reconcile found differences (dry run) or left some unfixed (--apply)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply pending migrations of the media database and FILES_DB, or show their status.
    Migrate(migrate::Opts),
    /// Manage managed-mode buckets (create, list, show, update, delete).
    Bucket(bucket::Opts),
    /// Compare storage with FILES_DB and report (or with --apply, fix) the drift.
    Reconcile(reconcile::Opts),
    /// Delete soft-deleted objects and stale pending uploads.
    Purge(purge::Opts),
    /// Objects and bytes per bucket and per organization.
    Stats(stats::Opts),
    /// Copy a SQLite deployment's metadata (media, audit, buckets, objects) into Postgres.
    CopyMetadata(copy_metadata::Opts),
    /// Mint a development JWT (HS256, Quickback claims) and print it on stdout.
    Token(token::Opts),
}

impl Command {
    /// Runs the command; the result is the process exit code.
    pub(crate) async fn run(self) -> anyhow::Result<u8> {
        match self {
            Self::Migrate(opts) => migrate::run(opts).await,
            Self::Bucket(opts) => bucket::run(opts).await,
            Self::Reconcile(opts) => reconcile::run(opts).await,
            Self::Purge(opts) => purge::run(opts).await,
            Self::Stats(opts) => stats::run(opts).await,
            Self::CopyMetadata(opts) => copy_metadata::run(opts).await,
            Self::Token(opts) => token::run(opts).await.map(|()| 0),
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
        assert_eq!(opts.ttl, std::time::Duration::from_hours(1));
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
        assert_eq!(
            opts.config.data_dir.as_deref(),
            Some(std::path::Path::new("/srv/fg"))
        );
        assert_eq!(
            opts.db_path(std::path::Path::new("/srv/fg")),
            std::path::Path::new("/tmp/x.db")
        );
    }

    #[test]
    fn reconcile_defaults_to_a_dry_run_with_a_day_for_orphans() {
        let cli = Cli::try_parse_from(["filegate-admin", "reconcile"]).unwrap();
        let Command::Reconcile(opts) = cli.command else {
            panic!("expected reconcile");
        };
        assert!(!opts.apply && !opts.delete_orphans && !opts.json);
        assert_eq!(opts.older_than, std::time::Duration::from_hours(24));
        assert_eq!(opts.page_size, 1000);
    }

    #[test]
    fn delete_orphans_requires_apply() {
        assert!(Cli::try_parse_from(["filegate-admin", "reconcile", "--delete-orphans"]).is_err());
        let cli = Cli::try_parse_from([
            "filegate-admin",
            "reconcile",
            "--apply",
            "--delete-orphans",
            "--older-than",
            "7d",
            "--start-after",
            "u/b/x",
            "--bucket",
            "avatars",
            "--prefix",
            "u/",
            "--json",
            "--yes",
        ])
        .unwrap();
        let Command::Reconcile(opts) = cli.command else {
            panic!("expected reconcile");
        };
        assert!(opts.apply && opts.delete_orphans && opts.json && opts.yes);
        assert_eq!(opts.older_than, std::time::Duration::from_hours(168));
        assert_eq!(opts.start_after.as_deref(), Some("u/b/x"));
    }

    #[test]
    fn bucket_subcommands_parse() {
        for args in [
            &["bucket", "list"][..],
            &["bucket", "show", "avatars", "--org", "o1"],
            &[
                "bucket",
                "create",
                "docs",
                "--read-scope",
                "public",
                "--allowed-mime-types",
                "image/*",
            ],
            &["bucket", "update", "docs", "--no-file-size-limit"],
            &["bucket", "delete", "docs", "--empty", "--yes"],
        ] {
            let argv = std::iter::once("filegate-admin").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
        assert!(
            Cli::try_parse_from([
                "filegate-admin",
                "bucket",
                "update",
                "docs",
                "--no-file-size-limit",
                "--file-size-limit",
                "10"
            ])
            .is_err()
        );
    }
}
