//! Content hashes of cleaned rows: equal hash = nothing to change, which is what makes re-imports
//! idempotent and cheap.

use sha2::{Digest, Sha256};
use std::io::Write;

/// A 16-byte hash over the given fields, unambiguous (each field is length-prefixed).
pub(crate) fn of(fields: &[&str]) -> Vec<u8> {
    let mut h = RowHasher::default();
    for f in fields {
        h.text(f);
    }
    h.finish().to_vec()
}

pub(crate) fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("\u{0}")
}

/// The same hash as [`of`], fed field by field without building strings: integers are hashed as
/// their decimal text, so stored hashes stay valid.
#[derive(Default)]
pub(crate) struct RowHasher(Sha256);

impl RowHasher {
    pub(crate) fn text(&mut self, f: &str) {
        self.bytes(f.as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u32).to_le_bytes());
        self.0.update(b);
    }

    pub(crate) fn int(&mut self, v: i64) {
        let mut buf = [0u8; 20];
        let mut rest = &mut buf[..];
        write!(rest, "{v}").expect("an i64 has at most 20 characters");
        let n = 20 - rest.len();
        self.bytes(&buf[..n]);
    }

    pub(crate) fn finish(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.0.finalize()[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_hash_as_their_text() {
        for v in [0, 7, -1, i64::MIN, i64::MAX, 1_700_000_000_000] {
            let mut h = RowHasher::default();
            h.text("a");
            h.int(v);
            assert_eq!(h.finish().to_vec(), of(&["a", &v.to_string()]));
        }
    }
}
