//! Rebuilds `termin` when the embedded FHIR packages (`packages/`, see `src/packages.rs`) or
//! the web app (`web/`, see `src/web.rs`) change: `include_dir!` alone does not tell cargo
//! about the files it reads.

fn main() {
    println!("cargo:rerun-if-changed=../../packages");
    println!("cargo:rerun-if-changed=../../web");
}
