//! Interned strings: client ids, subjects, scopes and audiences repeat across many tokens,
//! so read models store a 4-byte symbol per use and each distinct string once.

use hashbrown::HashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// A set of strings, each with a stable symbol in insertion order.
#[derive(Clone, Debug)]
pub struct Interner {
    strings: Vec<Arc<str>>,
    symbols: HashMap<Arc<str>, Sym>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::from_strings(vec![Arc::from("")])
    }
}

impl PartialEq for Interner {
    fn eq(&self, other: &Interner) -> bool {
        self.strings == other.strings
    }
}

impl Interner {
    fn from_strings(strings: Vec<Arc<str>>) -> Interner {
        let symbols = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), Sym(i as u32)))
            .collect();
        Interner { strings, symbols }
    }

    /// The symbol of `text`, interning it on first sight.
    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(sym) = self.symbols.get(text) {
            return *sym;
        }
        let sym = Sym(self.strings.len() as u32);
        let text: Arc<str> = Arc::from(text);
        self.strings.push(text.clone());
        self.symbols.insert(text, sym);
        sym
    }

    /// The symbol of `text`, if it was ever interned.
    pub fn lookup(&self, text: &str) -> Option<Sym> {
        self.symbols.get(text).copied()
    }

    /// The symbol of an optional string ([`Sym::NONE`] for `None`).
    pub fn intern_opt(&mut self, text: Option<&str>) -> Sym {
        text.map_or(Sym::NONE, |t| self.intern(t))
    }

    /// The string of a symbol.
    pub fn get(&self, sym: Sym) -> &str {
        &self.strings[sym.0 as usize]
    }

    /// The string of a symbol, `None` for [`Sym::NONE`].
    pub fn get_opt(&self, sym: Sym) -> Option<&str> {
        (sym != Sym::NONE).then(|| self.get(sym))
    }
}

impl Serialize for Interner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.strings.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Interner, D::Error> {
        let strings = Vec::<Arc<str>>::deserialize(deserializer)?;
        if strings.first().is_none_or(|s| !s.is_empty()) {
            return Err(serde::de::Error::custom(
                "interner must start with the empty string",
            ));
        }
        Ok(Interner::from_strings(strings))
    }
}
