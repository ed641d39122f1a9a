# filegate tasks. `just` lists them; CI runs `just ci` (the same steps as .ci/run).

default:
    @just --list

# Format every crate.
fmt:
    cargo fmt --all

# Clippy on everything, warnings are errors.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# API docs of every crate, broken links and other rustdoc warnings are errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# The README's test command.
test:
    cargo test --workspace

# What CI runs.
ci:
    bash .ci/run

# Run the server on its embedded defaults (no cloud account needed).
serve:
    cargo run --release -p filegate-server

# The admin CLI, e.g. `just admin token --user u1 --org org1 --role member`.
admin *ARGS:
    cargo run --release -p filegate-admin -- {{ARGS}}

# Load figures of the hot paths against /healthz in one run (needs wrk); docs/BENCHMARKS.md.
# `databases`: sqlite, postgres or both (Postgres: FILEGATE_BENCH_DATABASE_URL).
bench-http duration="6s" connections="64" databases="sqlite":
    bash scripts/bench-http.sh {{duration}} {{connections}} {{databases}}

# Criterion benchmarks (release); figures go to docs/BENCHMARKS.md.
bench:
    cargo bench -p filegate-r2 --bench presign

# Fuzz one parser of untrusted input for a while, e.g. `just fuzz media_type 300`.
# Targets: media_type key_and_path filename range_and_conditionals cookie_and_jwt url_token.
# Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP lets the stable toolchain take the
# sanitizer flags. Results go to docs/SECURITY.md.
fuzz target secs="60":
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} -- -max_total_time={{secs}}
