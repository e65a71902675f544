//! Where an element instance is, as FHIRPath (`Patient.identifier[0].system`,
//! `Patient.deceased.ofType(boolean)`). Paths are chains on the stack while the walk
//! descends and are only rendered into text for issues.

use std::fmt;

#[derive(Clone, Copy)]
pub(crate) struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    name: &'p str,
    index: Option<usize>,
    /// The type of a choice element or contained resource: `.ofType(type)`.
    of_type: Option<&'p str>,
}

impl<'p> Path<'p> {
    pub fn root(name: &'p str) -> Self {
        Path {
            parent: None,
            name,
            index: None,
            of_type: None,
        }
    }

    pub fn child(&'p self, name: &'p str, of_type: Option<&'p str>) -> Path<'p> {
        Path {
            parent: Some(self),
            name,
            index: None,
            of_type,
        }
    }

    /// The same element, item `index` of its array.
    pub fn at(&self, index: usize) -> Path<'p> {
        Path {
            index: Some(index),
            ..*self
        }
    }

    /// The same element, known to be of `type_name` (a contained resource).
    pub fn of_type(&self, type_name: &'p str) -> Path<'p> {
        Path {
            of_type: Some(type_name),
            ..*self
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.name)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        if let Some(type_name) = self.of_type {
            write!(f, ".ofType({type_name})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fhirpath_locations() {
        let root = Path::root("Patient");
        let identifier = root.child("identifier", None).at(0);
        assert_eq!(identifier.child("system", None).to_string(), "Patient.identifier[0].system");
        assert_eq!(root.child("deceased", Some("boolean")).to_string(), "Patient.deceased.ofType(boolean)");
        assert_eq!(root.child("contained", None).at(1).of_type("Practitioner").to_string(), "Patient.contained[1].ofType(Practitioner)");
    }
}
