//! GPU models and sets of them: interned names so that model constraints are bit tests.

use std::fmt;

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
    #[error("GPU model name {0:?} is not valid (use letters, digits, '-', '_' or '.')")]
    BadName(String),
    #[error("more than {MAX_MODELS} distinct GPU models")]
    TooMany,
}

/// Whether `name` (already trimmed) can be a GPU model name: letters, digits, '-', '_', '.'.
pub fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Interns GPU model names. Names compare exactly (case-sensitive), as node labels do.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    names: Vec<String>,
}

impl ModelCatalog {
    pub fn intern(&mut self, name: &str) -> Result<ModelId, ModelError> {
        let name = name.trim();
        if !valid_model_name(name) {
            return Err(ModelError::BadName(name.to_string()));
        }
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(ModelId(i as u8));
        }
        if self.names.len() >= MAX_MODELS {
            return Err(ModelError::TooMany);
        }
        self.names.push(name.to_string());
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

    pub fn lookup(&self, name: &str) -> Option<ModelId> {
        self.names
            .iter()
            .position(|n| n == name)
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
        assert!(matches!(c.intern("bad name"), Err(ModelError::BadName(_))));
    }
}
