//! Rebuilds `termin` when the embedded FHIR packages (`packages/`, see `src/packages.rs`)
//! change: `include_dir!` alone does not tell cargo about the files it reads.

fn main() {
    println!("cargo:rerun-if-changed=../../packages");
}
