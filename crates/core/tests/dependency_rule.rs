//! The dependency rule of docs/ARCHITECTURE.md: core depends on no adapter and no I/O crate.

#[test]
fn core_has_no_io_or_adapter_dependencies() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let deps_section = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] section")
        .split("\n[")
        .next()
        .unwrap();
    let deps: Vec<&str> = deps_section
        .lines()
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert!(
        deps.contains(&"async-trait"),
        "parsed the section: {deps:?}"
    );
    let forbidden = [
        "tokio",
        "axum",
        "hyper",
        "reqwest",
        "rusqlite",
        "deadpool",
        "s3s",
        "aws",
        "filegate-",
        "tower",
        "jsonwebtoken",
    ];
    for dep in &deps {
        if *dep == "tokio" {
            continue;
        }
        assert!(
            !forbidden.iter().any(|f| dep.starts_with(f)),
            "filegate-core must not depend on {dep}"
        );
    }
    // tokio only for its synchronisation primitives (key_locks' fair mutex): no
    // runtime, no net, no fs.
    for line in deps_section.lines().filter(|l| l.starts_with("tokio")) {
        assert_eq!(
            line.split_once('=').map(|(_, spec)| spec.trim()),
            Some(r#"{ version = "1", default-features = false, features = ["sync"] }"#),
            "filegate-core may use tokio's sync primitives only: {line}"
        );
    }
}
