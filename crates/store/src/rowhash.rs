//! Content hashes of cleaned rows: equal hash = nothing to change, which is what makes re-imports
//! idempotent and cheap.

use sha2::{Digest, Sha256};

/// A 16-byte hash over the given fields, unambiguous (each field is length-prefixed).
pub(crate) fn of(fields: &[&str]) -> Vec<u8> {
    let mut h = Sha256::new();
    for f in fields {
        h.update((f.len() as u32).to_le_bytes());
        h.update(f.as_bytes());
    }
    h.finalize()[..16].to_vec()
}

pub(crate) fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("\u{0}")
}
