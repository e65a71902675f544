//! Rebuilds the backend when a schema migration file changes: `include_dir!` alone does not
//! tell cargo about the files it reads (see `src/migrations.rs`).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
