//! GPU models and sets of them: interned names so that model constraints are bit tests.

use std::fmt;

use super::product::{ProductError, normalise, same};

/// Largest number of distinct GPU models one cluster may name (one bit each in [`ModelSet`]).
pub const MAX_MODELS: usize = 64;

/// An interned GPU model name, e.g. `V100M32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(u8);

impl ModelId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A set of GPU models; `ModelSet::ANY` means "no constraint".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ModelSet(u64);

impl ModelSet {
    /// No constraint: every model is allowed.
    pub const ANY: ModelSet = ModelSet(u64::MAX);
    pub const EMPTY: ModelSet = ModelSet(0);

    pub fn only(id: ModelId) -> Self {
        ModelSet(1 << id.0)
    }
    pub fn with(self, id: ModelId) -> Self {
        ModelSet(self.0 | (1 << id.0))
    }
    pub fn contains(self, id: ModelId) -> bool {
        self.0 & (1 << id.0) != 0
    }
    pub fn is_any(self) -> bool {
        self == Self::ANY
    }
    /// Whether a device of `model` satisfies this constraint.
    pub fn allows(self, model: Option<ModelId>) -> bool {
        self.is_any() || model.is_some_and(|m| self.contains(m))
    }
}

/// Why a GPU model name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    BadName(#[from] ProductError),
    #[error("more than {MAX_MODELS} distinct GPU models")]
    TooMany,
}

/// Interns GPU model names in their normal form ([`normalise`]): the NVML, GFD and short
/// spellings of one product are one model, and names compare ignoring ASCII case (the spelling
/// interned first is the one shown).
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    names: Vec<String>,
}

impl ModelCatalog {
    pub fn intern(&mut self, name: &str) -> Result<ModelId, ModelError> {
        let name = normalise(name)?;
        if let Some(id) = self.find(&name) {
            return Ok(id);
        }
        if self.names.len() >= MAX_MODELS {
            return Err(ModelError::TooMany);
        }
        self.names.push(name);
        Ok(ModelId((self.names.len() - 1) as u8))
    }

    /// Parse a list of models separated by `sep` ("V100M16|V100M32"); empty means any.
    pub fn parse_set(&mut self, text: &str, sep: char) -> Result<ModelSet, ModelError> {
        let mut set = ModelSet::EMPTY;
        for part in text.split(sep).map(str::trim).filter(|p| !p.is_empty()) {
            set = set.with(self.intern(part)?);
        }
        Ok(if set == ModelSet::EMPTY {
            ModelSet::ANY
        } else {
            set
        })
    }

    /// The model `name` (in any spelling) is, if it is in the catalog; `None` too for a name
    /// that is not valid.
    pub fn lookup(&self, name: &str) -> Option<ModelId> {
        normalise(name).ok().and_then(|n| self.find(&n))
    }

    fn find(&self, normal: &str) -> Option<ModelId> {
        self.names
            .iter()
            .position(|n| same(n, normal))
            .map(|i| ModelId(i as u8))
    }

    pub fn name(&self, id: ModelId) -> &str {
        self.names.get(id.index()).map_or("?", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Every interned model, in interning order.
    pub fn ids(&self) -> impl Iterator<Item = ModelId> + '_ {
        (0..self.names.len()).map(|i| ModelId(i as u8))
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// A display adapter listing the set's names (`any` for no constraint).
    pub fn show(&self, set: ModelSet) -> ShowSet<'_> {
        ShowSet { catalog: self, set }
    }
}

#[derive(Debug)]
pub struct ShowSet<'a> {
    catalog: &'a ModelCatalog,
    set: ModelSet,
}

impl fmt::Display for ShowSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.set.is_any() {
            return f.write_str("any");
        }
        let names: Vec<&str> = (0..self.catalog.len())
            .map(|i| ModelId(i as u8))
            .filter(|id| self.set.contains(*id))
            .map(|id| self.catalog.name(id))
            .collect();
        f.write_str(&names.join("|"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_names() {
        let mut c = ModelCatalog::default();
        let set = c.parse_set("V100M16|V100M32", '|').unwrap();
        let v16 = c.lookup("V100M16").unwrap();
        let t4 = c.intern("T4").unwrap();
        assert!(set.contains(v16) && !set.contains(t4));
        assert_eq!(c.show(set).to_string(), "V100M16|V100M32");
        assert!(c.parse_set("", '|').unwrap().is_any());
        assert!(matches!(c.intern("bad/name"), Err(ModelError::BadName(_))));
        // The NVML, GFD and short spellings of a product, in any case, are one model.
        let a100 = c.intern("NVIDIA A100-SXM4-80GB").unwrap();
        assert_eq!(c.name(a100), "A100-SXM4-80GB");
        for other in ["NVIDIA-A100-SXM4-80GB", "A100-SXM4-80GB", "a100-sxm4-80gb"] {
            assert_eq!(c.intern(other), Ok(a100), "{other}");
            assert_eq!(c.lookup(other), Some(a100), "{other}");
        }
        assert_eq!(c.lookup("Tesla-T4"), Some(t4));
        assert_eq!(c.lookup("bad/name"), None);
        assert_eq!(c.len(), 4);
    }
}
