//! The layering of docs/ARCHITECTURE.md above the core: bootstrap depends on no app, and
//! the admin depends on no app either (only its tests may start the server).

fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("the manifest");
    let section = text
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] section")
        .split("\n[")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.split(['=', '.']).next())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect()
}

#[test]
fn bootstrap_and_admin_depend_on_no_app() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for manifest in ["bootstrap/Cargo.toml", "apps/admin/Cargo.toml"] {
        let deps = dependencies(&format!("{root}/{manifest}"));
        assert!(
            deps.iter().any(|d| d == "filegate-core"),
            "parsed {manifest}: {deps:?}"
        );
        for app in ["filegate-server", "filegate-admin"] {
            assert!(
                !deps.iter().any(|d| d == app),
                "{manifest} must not depend on {app}"
            );
        }
    }
    let admin = dependencies(&format!("{root}/apps/admin/Cargo.toml"));
    assert!(admin.iter().any(|d| d == "filegate-bootstrap"), "{admin:?}");
}
