//! FHIR NPM packages in the package-cache layout (`<dir>/<name>#<version>/package/*.json`), or
//! compiled into the program, and the index of the conformance resources in them.
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
    /// The `package/` directory; `None` for a package compiled into the program.
    pub path: Option<PathBuf>,
    /// StructureDefinitions, ValueSets and CodeSystems indexed from it.
    pub definitions: usize,
}

/// A package compiled into the program: the files of its `package/` directory by name
/// (`package.json`, `StructureDefinition-….json`, …).
#[derive(Debug, Clone)]
pub struct EmbeddedPackage {
    /// `name#version`, as its `package.json` says.
    pub id: &'static str,
    pub files: Vec<(&'static str, &'static [u8])>,
}

impl EmbeddedPackage {
    fn file(&self, name: &str) -> Option<&'static [u8]> {
        self.files.iter().find(|(file, _)| *file == name).map(|(_, bytes)| *bytes)
    }
}

/// Where a conformance resource's JSON is.
enum Source {
    File(PathBuf),
    Embedded { name: String, bytes: &'static [u8] },
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Embedded { name, .. } => name.clone(),
        }
    }

    fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>, String> {
        match self {
            Source::File(path) => std::fs::read(path).map(Into::into).map_err(|e| e.to_string()),
            Source::Embedded { bytes, .. } => Ok((*bytes).into()),
        }
    }
}

/// A conformance resource known by its source, compiled on first use.
pub(crate) struct Lazy<T> {
    source: Source,
    compiled: OnceLock<Result<T, String>>,
}

impl<T> Lazy<T> {
    fn new(source: Source) -> Self {
        Lazy {
            source,
            compiled: OnceLock::new(),
        }
    }

    /// The compiled resource; a file that cannot be read or compiled is an error every time.
    pub(crate) fn get(&self, compile: impl FnOnce(serde_json::Value) -> Result<T, String>) -> Result<&T, &str> {
        self.compiled
            .get_or_init(|| {
                let failed = |e: String| format!("{}: {e}", self.source.name());
                let text = self.source.read().map_err(failed)?;
                let json = serde_json::from_slice(&text).map_err(|e| failed(e.to_string()))?;
                compile(json).map_err(failed)
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
    /// Loads every package in `package_dirs`, the `embedded` packages, the R5 core package and
    /// the dependencies of all of them. Dependencies are looked up in `package_dirs`, among the
    /// embedded packages, then in `cache` (the FHIR package cache, where the R5 core package is
    /// installed); other packages in the cache are ignored.
    pub fn load(embedded: &[EmbeddedPackage], package_dirs: &[PathBuf], cache: Option<&Path>) -> Result<Self, LoadError> {
        let mut searched: Vec<PathBuf> = package_dirs.to_vec();
        searched.extend(cache.map(Path::to_owned));
        let mut wanted: Vec<(String, String)> = Vec::new();
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
        // Configured packages first (they may override embedded and core definitions), the core last.
        wanted.extend(embedded.iter().map(|package| (package.id.to_owned(), "Termin".to_owned())));
        wanted.push((R5_CORE.to_owned(), "Termin".to_owned()));
        let mut index = PackageIndex {
            packages: Vec::new(),
            structures: HashMap::default(),
            value_sets: HashMap::default(),
            code_systems: HashMap::default(),
        };
        let mut next = 0;
        while next < wanted.len() {
            let (id, needed_by) = wanted[next].clone();
            next += 1;
            if index.packages.iter().any(|p| p.id == id) {
                continue;
            }
            let on_disk = searched
                .iter()
                .map(|dir| dir.join(&id).join("package"))
                .find(|p| p.join("package.json").is_file());
            let compiled_in = embedded.iter().find(|package| package.id == id);
            let (manifest, path, definitions) = match (on_disk, compiled_in) {
                (Some(path), _) => {
                    let manifest_path = path.join("package.json");
                    let manifest: Manifest = std::fs::read(&manifest_path)
                        .map_err(|e| LoadError::file(&manifest_path, e))
                        .and_then(|text| {
                            serde_json::from_slice(&text).map_err(|e| LoadError::file(&manifest_path, e))
                        })?;
                    let definitions = index.add_directory(&path)?;
                    (manifest, Some(path), definitions)
                }
                (None, Some(package)) => {
                    let manifest: Manifest = serde_json::from_slice(package.file("package.json").unwrap_or_default())
                        .map_err(|e| LoadError::file(Path::new(&id), e))?;
                    (manifest, None, index.add_embedded(&id, package)?)
                }
                (None, None) => {
                    return Err(LoadError::Missing {
                        package: id,
                        needed_by,
                        searched,
                    });
                }
            };
            let id = format!("{}#{}", manifest.name, manifest.version);
            wanted.extend(
                manifest
                    .dependencies
                    .into_iter()
                    .map(|(name, version)| (format!("{name}#{version}"), id.clone())),
            );
            index.packages.push(PackageInfo { id, path, definitions });
        }
        Ok(index)
    }

    fn add_directory(&mut self, path: &Path) -> Result<usize, LoadError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LoadError::file(path, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_definition_file))
            .collect();
        files.sort();
        let mut count = 0;
        for file in files {
            let text = std::fs::read(&file).map_err(|e| LoadError::file(&file, e))?;
            count += usize::from(self.add(&text, Source::File(file))?);
        }
        Ok(count)
    }

    fn add_embedded(&mut self, id: &str, package: &EmbeddedPackage) -> Result<usize, LoadError> {
        let mut files: Vec<&(&str, &[u8])> = package.files.iter().filter(|(name, _)| is_definition_file(name)).collect();
        files.sort();
        let mut count = 0;
        for (name, bytes) in files {
            let source = Source::Embedded {
                name: format!("{id}/package/{name}"),
                bytes,
            };
            count += usize::from(self.add(bytes, source)?);
        }
        Ok(count)
    }

    /// Indexes one conformance resource; whether it was new.
    fn add(&mut self, text: &[u8], source: Source) -> Result<bool, LoadError> {
        let header: Header = serde_json::from_slice(text).map_err(|e| LoadError::file(Path::new(&source.name()), e))?;
        let Some(url) = header.url else {
            return Ok(false);
        };
        Ok(match header.resource_type.as_str() {
            "StructureDefinition" => insert_new(&mut self.structures, url, source),
            "ValueSet" => insert_new(&mut self.value_sets, url, source),
            "CodeSystem" => insert_new(&mut self.code_systems, url, source),
            _ => false,
        })
    }
}

fn is_definition_file(name: &str) -> bool {
    name.ends_with(".json")
        && ["StructureDefinition-", "ValueSet-", "CodeSystem-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

fn insert_new<T>(map: &mut HashMap<String, Lazy<T>>, url: String, source: Source) -> bool {
    if map.contains_key(&url) {
        return false;
    }
    map.insert(url, Lazy::new(source));
    true
}

/// A canonical reference without its `|version`.
pub(crate) fn unversioned(canonical: &str) -> &str {
    canonical.split('|').next().unwrap_or(canonical)
}
