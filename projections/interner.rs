//! Interned values: client ids, subjects, scopes and audiences repeat across many tokens,
//! and so do their combinations, so read models store a 4-byte number per use and each
//! distinct value once.

use hashbrown::{Equivalent, HashMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::Hash;
use std::sync::Arc;

/// A handle to an interned string; [`Sym::NONE`] stands for "absent".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Sym(u32);

impl Sym {
    /// The absent string.
    pub const NONE: Sym = Sym(0);
}

/// Distinct values, each stored once and numbered in insertion order.
#[derive(Clone, Debug)]
pub struct Distinct<T> {
    values: Vec<T>,
    numbers: HashMap<T, u32>,
}

impl<T> Default for Distinct<T> {
    fn default() -> Distinct<T> {
        Distinct {
            values: Vec::new(),
            numbers: HashMap::new(),
        }
    }
}

impl<T: PartialEq> PartialEq for Distinct<T> {
    fn eq(&self, other: &Distinct<T>) -> bool {
        self.values == other.values
    }
}

impl<T: Clone + Eq + Hash> Distinct<T> {
    fn from_values(values: Vec<T>) -> Distinct<T> {
        let numbers = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        Distinct { values, numbers }
    }

    /// The number of `key`, storing `owned(key)` on first sight.
    pub fn number<Q>(&mut self, key: &Q, owned: impl FnOnce(&Q) -> T) -> u32
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        if let Some(number) = self.numbers.get(key) {
            return *number;
        }
        let number = self.values.len() as u32;
        let value = owned(key);
        self.values.push(value.clone());
        self.numbers.insert(value, number);
        number
    }

    /// The number of `key`, if it was ever stored.
    pub fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.numbers.get(key).copied()
    }

    /// The value numbered `number`.
    pub fn get(&self, number: u32) -> &T {
        &self.values[number as usize]
    }
}

impl<T: Serialize> Serialize for Distinct<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.values.serialize(serializer)
    }
}

impl<'de, T: Clone + Eq + Hash + Deserialize<'de>> Deserialize<'de> for Distinct<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Distinct<T>, D::Error> {
        Ok(Distinct::from_values(Vec::deserialize(deserializer)?))
    }
}

/// A set of strings, each with a stable symbol in insertion order.
#[derive(Clone, Debug, PartialEq)]
pub struct Interner(Distinct<Arc<str>>);

impl Default for Interner {
    fn default() -> Interner {
        Interner(Distinct::from_values(vec![Arc::from("")]))
    }
}

impl Interner {
    /// The symbol of `text`, interning it on first sight.
    pub fn intern(&mut self, text: &str) -> Sym {
        Sym(self.0.number(text, |t| Arc::from(t)))
    }

    /// The symbol of `text`, if it was ever interned.
    pub fn lookup(&self, text: &str) -> Option<Sym> {
        self.0.find(text).map(Sym)
    }

    /// The symbol of an optional string ([`Sym::NONE`] for `None`).
    pub fn intern_opt(&mut self, text: Option<&str>) -> Sym {
        text.map_or(Sym::NONE, |t| self.intern(t))
    }

    /// The string of a symbol.
    pub fn get(&self, sym: Sym) -> &str {
        self.0.get(sym.0)
    }

    /// The string of a symbol, `None` for [`Sym::NONE`].
    pub fn get_opt(&self, sym: Sym) -> Option<&str> {
        (sym != Sym::NONE).then(|| self.get(sym))
    }
}

impl Serialize for Interner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Interner, D::Error> {
        let strings = Distinct::<Arc<str>>::deserialize(deserializer)?;
        if strings.values.first().is_none_or(|s| !s.is_empty()) {
            return Err(serde::de::Error::custom(
                "interner must start with the empty string",
            ));
        }
        Ok(Interner(strings))
    }
}
