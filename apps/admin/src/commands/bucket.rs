//! `bucket create|list|show|update|delete`: managed-mode buckets through
//! [`ManagedService`], with the HTTP API's rules, as a platform admin (project-wide
//! buckets), or acting for one organization with `--org`.

use anyhow::bail;
use filegate_bootstrap::config::Config;
use filegate_core::domain::{AuthMethod, Principal};
use filegate_core::managed::{Bucket, CreateBucket, ManagedService, UpdateBucket};
// `--json` writes the HTTP API's bucket, so scripts can use either.
use filegate_views::BucketView;

use super::{ConfigOpts, EXIT_OK, close_storage, confirm, managed_service};

/// The admin's user id in what it does through the service.
pub(crate) const ADMIN_USER: &str = "filegate-admin";

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    #[command(subcommand)]
    pub action: Action,
}

/// Who to act as.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ActAs {
    /// Act for this organization (as its highest role); without it, as a platform admin
    /// on project-wide buckets.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    #[command(flatten)]
    pub config: ConfigOpts,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
    /// Create a bucket: project-wide, or the organization's with --org.
    Create {
        name: String,
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        who: ActAs,
        #[arg(long)]
        json: bool,
    },
    /// List project-wide buckets, and the organization's with --org.
    List {
        #[command(flatten)]
        who: ActAs,
        #[arg(long)]
        json: bool,
    },
    /// Show one bucket, by name or id.
    Show {
        bucket: String,
        #[command(flatten)]
        who: ActAs,
        #[arg(long)]
        json: bool,
    },
    /// Change a bucket's scopes and limits.
    Update {
        bucket: String,
        #[command(flatten)]
        settings: Settings,
        /// Remove the bucket's own size limit (the service-wide maximum applies).
        #[arg(long, conflicts_with = "file_size_limit")]
        no_file_size_limit: bool,
        #[command(flatten)]
        who: ActAs,
        #[arg(long)]
        json: bool,
    },
    /// Delete a bucket; refused while it holds objects unless --empty.
    Delete {
        bucket: String,
        /// Delete every object of the bucket first.
        #[arg(long)]
        empty: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        who: ActAs,
    },
}

/// A bucket's settings; unset ones keep their value (update) or default (create).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Settings {
    /// public, authenticated, org or user [create default: org].
    #[arg(long, value_name = "SCOPE")]
    pub read_scope: Option<String>,
    /// org, user or an access rule like admin+ [create default: org].
    #[arg(long, value_name = "SCOPE")]
    pub write_scope: Option<String>,
    /// Largest object in bytes [default: the service-wide maximum].
    #[arg(long, value_name = "BYTES")]
    pub file_size_limit: Option<u64>,
    /// Allowed types, comma-separated (image/png,image/*); an empty value allows any.
    #[arg(long, value_name = "TYPES")]
    pub allowed_mime_types: Option<String>,
}

fn mime_list(raw: Option<&str>) -> Option<Vec<String>> {
    raw.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// The principal the admin acts as.
pub(crate) fn principal(config: &Config, org: Option<&str>) -> Principal {
    Principal {
        user_id: ADMIN_USER.to_owned(),
        active_org_id: org.map(str::to_owned),
        roles: org
            .and_then(|_| config.roles.roles().last().cloned())
            .into_iter()
            .collect(),
        platform_role: Some("admin".to_owned()),
        method: AuthMethod::default(),
    }
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let who = match &opts.action {
        Action::Create { who, .. }
        | Action::List { who, .. }
        | Action::Show { who, .. }
        | Action::Update { who, .. }
        | Action::Delete { who, .. } => who.clone(),
    };
    let config = who.config.load()?;
    let db = super::open_files_db(&config).await?;
    let storage = super::storage(&config).await?;
    let result = match managed_service(&config, &storage, &db) {
        Ok(service) => act(&service, &config, who.org.as_deref(), opts.action).await,
        Err(e) => Err(e),
    };
    close_storage(storage).await;
    result
}

async fn act(
    service: &ManagedService,
    config: &Config,
    org: Option<&str>,
    action: Action,
) -> anyhow::Result<u8> {
    let p = principal(config, org);
    let caller = Some(&p);
    let err = anyhow::Error::new;
    match action {
        Action::Create {
            name,
            settings,
            json,
            ..
        } => {
            let b = service
                .create_bucket(
                    caller,
                    CreateBucket {
                        name,
                        project_wide: org.is_none(),
                        read_scope: settings.read_scope,
                        write_scope: settings.write_scope,
                        file_size_limit: settings.file_size_limit,
                        allowed_mime_types: mime_list(settings.allowed_mime_types.as_deref())
                            .unwrap_or_default(),
                    },
                )
                .await
                .map_err(err)?;
            show(&[b], json, false)?;
        }
        Action::List { json, .. } => {
            let list = service.list_buckets(caller).await.map_err(err)?;
            show(&list, json, true)?;
        }
        Action::Show { bucket, json, .. } => {
            let b = service.get_bucket(caller, &bucket).await.map_err(err)?;
            show(&[b], json, false)?;
        }
        Action::Update {
            bucket,
            settings,
            no_file_size_limit,
            json,
            ..
        } => {
            let file_size_limit = if no_file_size_limit {
                Some(None)
            } else {
                settings.file_size_limit.map(Some)
            };
            let b = service
                .update_bucket(
                    caller,
                    &bucket,
                    UpdateBucket {
                        read_scope: settings.read_scope,
                        write_scope: settings.write_scope,
                        file_size_limit,
                        allowed_mime_types: mime_list(settings.allowed_mime_types.as_deref()),
                    },
                )
                .await
                .map_err(err)?;
            show(&[b], json, false)?;
        }
        Action::Delete {
            bucket, empty, yes, ..
        } => {
            let b = service.get_bucket(caller, &bucket).await.map_err(err)?;
            let what = if empty {
                format!(
                    "delete bucket {} ({}) and every object in it?",
                    b.name, b.id
                )
            } else {
                format!("delete bucket {} ({})?", b.name, b.id)
            };
            if !confirm(&what, yes)? {
                bail!("not confirmed; nothing deleted");
            }
            match service.delete_bucket(caller, b.id.as_str(), empty).await {
                Ok(()) => eprintln!("deleted bucket {} ({})", b.name, b.id),
                Err(filegate_core::Error::BucketNotEmpty) => bail!(
                    "bucket {} is not empty; pass --empty to delete its objects too",
                    b.name
                ),
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(EXIT_OK)
}

fn show(buckets: &[Bucket], json: bool, list: bool) -> anyhow::Result<()> {
    if json {
        if let (false, [one]) = (list, buckets) {
            println!(
                "{}",
                serde_json::to_string_pretty(&BucketView::from(one.clone()))?
            );
        } else {
            let all: Vec<BucketView> = buckets.iter().cloned().map(BucketView::from).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        return Ok(());
    }
    println!(
        "{:<34}  {:<24}  {:<16}  {:<13}  {:<10}  {:>12}  MIME TYPES",
        "ID", "NAME", "ORGANIZATION", "READ", "WRITE", "SIZE LIMIT"
    );
    for b in buckets {
        println!(
            "{:<34}  {:<24}  {:<16}  {:<13}  {:<10}  {:>12}  {}",
            b.id,
            b.name.as_str(),
            b.organization_id.as_deref().unwrap_or("(project)"),
            b.read_scope.as_str(),
            b.write_scope.to_string(),
            b.file_size_limit
                .map_or_else(|| "default".to_owned(), |s| s.bytes().to_string()),
            b.allowed_mime_strings().join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_admin_acts_with_the_highest_role() {
        let config = Config::ephemeral(std::path::Path::new("/tmp/x"));
        let p = principal(&config, Some("org1"));
        assert_eq!(p.active_org_id.as_deref(), Some("org1"));
        assert_eq!(p.roles, vec![config.roles.roles().last().cloned().unwrap()]);
        assert!(p.is_platform_admin());
        let p = principal(&config, None);
        assert!(p.roles.is_empty() && p.active_org_id.is_none());
    }

    #[test]
    fn mime_lists_split_on_commas_and_empty_clears() {
        assert_eq!(
            mime_list(Some("image/png, image/*")),
            Some(vec!["image/png".to_owned(), "image/*".to_owned()])
        );
        assert_eq!(mime_list(Some("")), Some(vec![]));
        assert_eq!(mime_list(None), None);
    }
}
