//! FHIR NPM packages in the package-cache layout (`<dir>/<name>#<version>/package/*.json`) and
//! the index of the conformance resources in them.
//!
//! Start-up only indexes: it reads the canonical URL of every StructureDefinition, ValueSet and
//! CodeSystem (skipping the rest of each file without building it), and compiles a definition
//! the first time a validation needs it.

use foldhash::HashMap;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The package every R5 profile builds on.
pub const R5_CORE: &str = "hl7.fhir.r5.core#5.0.0";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the FHIR package {package} (needed by {needed_by}) is in none of {searched:?}; \
         install it with scripts/fhir-packages"
    )]
    Missing {
        package: String,
        needed_by: String,
        searched: Vec<PathBuf>,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl LoadError {
    fn file(path: &Path, message: impl ToString) -> Self {
        LoadError::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

/// One loaded package.
#[derive(Debug, Clone)]
pub struct PackageInfo {
    /// `name#version`, as in the package cache.
    pub id: String,
    /// The `package/` directory.
    pub path: PathBuf,
    /// StructureDefinitions, ValueSets and CodeSystems indexed from it.
    pub definitions: usize,
}

/// A conformance resource known by its file, compiled on first use.
pub(crate) struct Lazy<T> {
    file: PathBuf,
    compiled: OnceLock<Result<T, String>>,
}

impl<T> Lazy<T> {
    fn new(file: PathBuf) -> Self {
        Lazy {
            file,
            compiled: OnceLock::new(),
        }
    }

    /// The compiled resource; a file that cannot be read or compiled is an error every time.
    pub(crate) fn get(&self, compile: impl FnOnce(serde_json::Value) -> Result<T, String>) -> Result<&T, &str> {
        self.compiled
            .get_or_init(|| {
                let text = std::fs::read(&self.file).map_err(|e| format!("{}: {e}", self.file.display()))?;
                let json = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", self.file.display()))?;
                compile(json).map_err(|e| format!("{}: {e}", self.file.display()))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// The conformance resources of a set of packages, by canonical URL (without `|version`).
/// When two packages define one URL, the first loaded wins.
pub(crate) struct PackageIndex<S, V, C> {
    pub packages: Vec<PackageInfo>,
    pub structures: HashMap<String, Lazy<S>>,
    pub value_sets: HashMap<String, Lazy<V>>,
    pub code_systems: HashMap<String, Lazy<C>>,
}

#[derive(Deserialize)]
struct Manifest {
    name: String,
    version: String,
    #[serde(default)]
    dependencies: std::collections::BTreeMap<String, String>,
}

/// Only the fields the index needs; everything else in the file is skipped unbuilt.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "resourceType")]
    resource_type: String,
    url: Option<String>,
}

impl<S, V, C> PackageIndex<S, V, C> {
    /// Loads every package in `package_dirs`, the R5 core package, and the dependencies of all
    /// of them. Dependencies are looked up in `package_dirs`, then in `cache` (the FHIR package
    /// cache, where the R5 core package is installed); other packages in the cache are ignored.
    pub fn load(package_dirs: &[PathBuf], cache: Option<&Path>) -> Result<Self, LoadError> {
        let mut searched: Vec<PathBuf> = package_dirs.to_vec();
        searched.extend(cache.map(Path::to_owned));
        let mut wanted: Vec<(String, String)> = vec![(R5_CORE.to_owned(), "Termin".to_owned())];
        for dir in package_dirs {
            let entries = std::fs::read_dir(dir).map_err(|e| LoadError::file(dir, e))?;
            let mut names: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().join("package").join("package.json").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect();
            names.sort();
            wanted.extend(names.into_iter().map(|name| (name, dir.display().to_string())));
        }
        let mut index = PackageIndex {
            packages: Vec::new(),
            structures: HashMap::default(),
            value_sets: HashMap::default(),
            code_systems: HashMap::default(),
        };
        // Configured packages first (they may override core definitions), the core last.
        wanted.rotate_left(1);
        let mut next = 0;
        while next < wanted.len() {
            let (id, needed_by) = wanted[next].clone();
            next += 1;
            if index.packages.iter().any(|p| p.id == id) {
                continue;
            }
            let path = searched
                .iter()
                .map(|dir| dir.join(&id).join("package"))
                .find(|p| p.join("package.json").is_file())
                .ok_or_else(|| LoadError::Missing {
                    package: id.clone(),
                    needed_by,
                    searched: searched.clone(),
                })?;
            let manifest_path = path.join("package.json");
            let manifest: Manifest = std::fs::read(&manifest_path)
                .map_err(|e| LoadError::file(&manifest_path, e))
                .and_then(|text| serde_json::from_slice(&text).map_err(|e| LoadError::file(&manifest_path, e)))?;
            let id = format!("{}#{}", manifest.name, manifest.version);
            wanted.extend(
                manifest
                    .dependencies
                    .into_iter()
                    .map(|(name, version)| (format!("{name}#{version}"), id.clone())),
            );
            let definitions = index.add_package(&path)?;
            index.packages.push(PackageInfo { id, path, definitions });
        }
        Ok(index)
    }

    fn add_package(&mut self, path: &Path) -> Result<usize, LoadError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LoadError::file(path, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|name| {
                    name.ends_with(".json")
                        && ["StructureDefinition-", "ValueSet-", "CodeSystem-"]
                            .iter()
                            .any(|prefix| name.starts_with(prefix))
                })
            })
            .collect();
        files.sort();
        let mut count = 0;
        for file in files {
            let text = std::fs::read(&file).map_err(|e| LoadError::file(&file, e))?;
            let header: Header = serde_json::from_slice(&text).map_err(|e| LoadError::file(&file, e))?;
            let Some(url) = header.url else {
                continue;
            };
            let added = match header.resource_type.as_str() {
                "StructureDefinition" => insert_new(&mut self.structures, url, file),
                "ValueSet" => insert_new(&mut self.value_sets, url, file),
                "CodeSystem" => insert_new(&mut self.code_systems, url, file),
                _ => false,
            };
            count += usize::from(added);
        }
        Ok(count)
    }
}

fn insert_new<T>(map: &mut HashMap<String, Lazy<T>>, url: String, file: PathBuf) -> bool {
    if map.contains_key(&url) {
        return false;
    }
    map.insert(url, Lazy::new(file));
    true
}

/// A canonical reference without its `|version`.
pub(crate) fn unversioned(canonical: &str) -> &str {
    canonical.split('|').next().unwrap_or(canonical)
}
