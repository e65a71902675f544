//! The loaded conformance resources: StructureDefinitions, ValueSets and CodeSystems by
//! canonical URL, compiled on first use. Also the FHIRPath type model derived from the base
//! StructureDefinitions.

use crate::package::{EmbeddedPackage, LoadError, PackageIndex, PackageInfo};
use crate::structure::{Kind, Structure};
use crate::terminology::{CodeSystemDef, Terminology, ValueSetDef};
use std::path::{Path, PathBuf};
use termin_fhirpath::TypeModel;

/// Canonical base of the core StructureDefinitions (`<base>Patient`).
pub(crate) const CORE_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";

pub struct Definitions {
    index: PackageIndex<Structure, ValueSetDef, CodeSystemDef>,
    /// Type name → URL of the core definitions (`Patient` → `<CORE_BASE>Patient`).
    core_types: foldhash::HashMap<String, String>,
}

impl Definitions {
    /// Indexes the packages in `package_dirs` (every `<name>#<version>/package/` in them), the
    /// R5 core package and all their dependencies, looked up in `package_dirs` and then in the
    /// FHIR package cache `cache`.
    pub fn load(package_dirs: &[PathBuf], cache: Option<&Path>) -> Result<Definitions, LoadError> {
        Self::load_with(&[], package_dirs, cache)
    }

    /// Like [`load`](Self::load), with packages compiled into the program besides; a package
    /// in `package_dirs` with the same `name#version` as an embedded one is used instead of it.
    pub fn load_with(
        embedded: &[EmbeddedPackage],
        package_dirs: &[PathBuf],
        cache: Option<&Path>,
    ) -> Result<Definitions, LoadError> {
        let index = PackageIndex::load(embedded, package_dirs, cache)?;
        let core_types = index
            .structures
            .keys()
            .filter_map(|url| Some((url.strip_prefix(CORE_BASE)?.to_owned(), url.clone())))
            .collect();
        Ok(Definitions { index, core_types })
    }

    /// The loaded packages, configured ones first.
    pub fn packages(&self) -> &[PackageInfo] {
        &self.index.packages
    }

    /// Whether a StructureDefinition with this canonical URL is loaded.
    pub fn has_structure(&self, url: &str) -> bool {
        self.index.structures.contains_key(url)
    }

    /// The compiled StructureDefinition; `Err` when it is loaded but cannot be compiled.
    pub(crate) fn structure(&self, url: &str) -> Option<Result<&Structure, &str>> {
        Some(self.index.structures.get(url)?.get(Structure::compile))
    }

    /// The base definition of a type (`Patient`, `HumanName`, `string`).
    pub(crate) fn base(&self, type_name: &str) -> Option<&Structure> {
        let url = self.core_types.get(type_name)?;
        self.index.structures.get(url)?.get(Structure::compile).ok()
    }

    /// Compiles every StructureDefinition reachable from `url` (its types, their profiles and
    /// extension definitions), so that the first validation does not pay for it and broken
    /// definitions show at start-up. Returns the problems found.
    pub fn preload(&self, url: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut pending = vec![url.to_owned()];
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = pending.pop() {
            if !seen.insert(url.clone()) {
                continue;
            }
            let structure = match self.structure(&url) {
                None => continue,
                Some(Err(e)) => {
                    problems.push(e.to_owned());
                    continue;
                }
                Some(Ok(structure)) => structure,
            };
            problems.extend(
                structure
                    .unsupported_constraints
                    .iter()
                    .map(|(key, why)| format!("{url}: constraint {key} is not evaluated: {why}")),
            );
            for element in &structure.elements {
                for type_ref in &element.types {
                    pending.push(format!("{CORE_BASE}{}", type_ref.code));
                    pending.extend(type_ref.profiles.iter().cloned());
                }
            }
        }
        problems
    }
}

impl Terminology for Definitions {
    fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
        self.index.value_sets.get(url)?.get(ValueSetDef::compile).ok()
    }

    fn code_system(&self, url: &str) -> Option<&CodeSystemDef> {
        self.index.code_systems.get(url)?.get(CodeSystemDef::compile).ok()
    }
}

/// Element types from the base definitions: backbone elements answer with their path, as
/// the FHIRPath engine expects.
impl TypeModel for Definitions {
    fn child_type(&self, parent_type: &str, element: &str) -> Option<&str> {
        let owner = parent_type.split('.').next()?;
        let structure = self.base(owner)?;
        let parent = structure.index_of(parent_type)?;
        let (child, _) = structure.child_named(parent, element)?;
        let found = &structure.elements[child];
        let found = match found.content_reference {
            Some(target) => &structure.elements[target],
            None => found,
        };
        match found.types.first() {
            Some(t) if t.code == "BackboneElement" || t.code == "Element" => Some(found.path.as_str()),
            Some(t) => Some(t.fhirpath_code.as_str()),
            None if structure.kind == Kind::Resource || structure.kind == Kind::ComplexType => Some(found.path.as_str()),
            None => None,
        }
    }
}
