//! The FHIR packages compiled into `termin` (the repository's `packages/`: AT Core and AT
//! Scheduling), so that a bare `termin serve` validates against the AT profiles and `--demo`
//! has the IG examples without any files beside the binary.

use include_dir::{Dir, include_dir};
use termin_validation::EmbeddedPackage;

static PACKAGES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../packages");

/// Every embedded package (`<name>#<version>/package/`), in name order, its files too.
pub fn embedded() -> Vec<EmbeddedPackage> {
    let mut packages: Vec<EmbeddedPackage> = PACKAGES
        .dirs()
        .filter_map(|dir| {
            let content = dir.get_dir(dir.path().join("package"))?;
            let mut files: Vec<(&'static str, &'static [u8])> = content
                .files()
                .filter_map(|file| Some((file.path().file_name()?.to_str()?, file.contents())))
                .collect();
            files.sort();
            Some(EmbeddedPackage { id: dir.path().file_name()?.to_str()?, files })
        })
        .collect();
    packages.sort_by_key(|package| package.id);
    packages
}
