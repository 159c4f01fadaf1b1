//! Per-member counts up to a cap, for `times` conditions (`bought(..., times >= 2)`,
//! `checked(..., times >= 3)`): kept as bit planes, plane j holding the members counted more than j
//! times. A count touches cap bits in an array of cap × n/8 bytes (3.75 MB for a cap of 3 at 10M
//! members, in the cache), where a counter per member would be a read and a write in an array of
//! 4n bytes (in memory at that size) for every posting read. The answer comes out as bitmap words.

use crate::lang::Cmp;
use roaring::RoaringBitmap;

/// Counts above this are not kept as planes (the caller counts another way).
pub const MAX_CAP: u32 = 16;

/// The cap that decides `conditions` (`(cmp, threshold)` each, all to hold): counts at or above it
/// pass or fail alike. `None` when it is above [`MAX_CAP`].
pub fn cap(conditions: &[(Cmp, f64)]) -> Option<u32> {
    let mut cap = 1.0f64;
    for &(_, t) in conditions {
        if !t.is_nan() {
            cap = cap.max(t.floor() + 1.0);
        }
    }
    (cap <= MAX_CAP as f64).then_some(cap as u32)
}

/// Counts of members `0..n`, up to a cap. Kept without branches on the data (a mispredicted
/// branch per posting cost more than the memory): plane j of word w (members 64w..64w+64) is
/// `planes[w * cap + j]`, so a member's planes share a cache line, and counting is
/// `plane[j] |= plane[j - 1] & bit` from the top down.
pub struct Counts {
    cap: usize,
    planes: Vec<u64>,
    /// Members seen on the current day (see [`Counts::once_a_day`]; repeats allowed) and their bits.
    today: Vec<u32>,
    today_bits: Vec<u64>,
}

impl Counts {
    pub fn new(n: usize, cap: u32) -> Counts {
        let words = n.div_ceil(64);
        let cap = cap.max(1) as usize;
        Counts { cap, planes: vec![0; words * cap], today: Vec::new(), today_bits: vec![0; words] }
    }

    /// Counts member `o` once more (up to the cap) if `yes`.
    #[inline]
    pub fn add_if(&mut self, o: u32, yes: bool) {
        let w = (o / 64) as usize;
        self.add_bits(w, (yes as u64) << (o % 64));
    }

    #[inline]
    fn add_bits(&mut self, w: usize, bit: u64) {
        let planes = &mut self.planes[w * self.cap..(w + 1) * self.cap];
        for j in (1..planes.len()).rev() {
            planes[j] |= planes[j - 1] & bit;
        }
        planes[0] |= bit;
    }

    /// Counts member `o` once for the current day however often it is seen that day; call
    /// [`Counts::end_day`] between days.
    #[inline]
    pub fn once_a_day(&mut self, o: u32) {
        self.today_bits[(o / 64) as usize] |= 1 << (o % 64);
        self.today.push(o);
    }

    pub fn end_day(&mut self) {
        let mut today = std::mem::take(&mut self.today);
        for &o in &today {
            let (w, b) = ((o / 64) as usize, 1u64 << (o % 64));
            // The first time `o` is met in the list its bit is still set.
            let bit = self.today_bits[w] & b;
            self.today_bits[w] &= !b;
            self.add_bits(w, bit);
        }
        today.clear();
        self.today = today;
    }

    /// The members whose count passes `keep`, and the members counted at all.
    pub fn select(mut self, keep: impl Fn(u32) -> bool) -> (RoaringBitmap, RoaringBitmap) {
        self.end_day();
        // Which exact counts 1..=cap (cap meaning "cap or more") pass.
        let pass: Vec<bool> = (1..=self.cap as u32).map(&keep).collect();
        let words = self.planes.len() / self.cap;
        let mut hit = Vec::with_capacity(words * 8);
        let mut seen = Vec::with_capacity(words * 8);
        for planes in self.planes.chunks_exact(self.cap) {
            let mut x = 0u64;
            for (c, _) in pass.iter().enumerate().filter(|(_, p)| **p) {
                x |= planes[c] & !planes.get(c + 1).copied().unwrap_or(0);
            }
            hit.extend_from_slice(&x.to_le_bytes());
            seen.extend_from_slice(&planes[0].to_le_bytes());
        }
        (RoaringBitmap::from_lsb0_bytes(0, &hit), RoaringBitmap::from_lsb0_bytes(0, &seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Counts by planes answer as plain counters, once a day or every time.
        #[test]
        fn planes_count_as_counters(
            days in prop::collection::vec(prop::collection::vec(0u32..150, 0..40), 0..8),
            daily in any::<bool>(),
            cmp in prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)],
            t in (-2i32..12).prop_map(|k| k as f64 / 2.0),
        ) {
            let n = 150;
            let conditions = [(cmp, t)];
            let keep = |c: u32| crate::numeric::Want::Cmp(cmp, t).holds(c as f64);
            let mut counts = Counts::new(n, cap(&conditions).unwrap());
            let mut plain = vec![0u32; n];
            for day in &days {
                let mut seen = std::collections::HashSet::new();
                for &o in day {
                    if daily {
                        counts.once_a_day(o);
                        if seen.insert(o) {
                            plain[o as usize] += 1;
                        }
                    } else {
                        counts.add_if(o, true);
                        plain[o as usize] += 1;
                    }
                }
                if daily {
                    counts.end_day();
                }
            }
            let (hit, seen) = counts.select(keep);
            let want_hit: RoaringBitmap = (0..n as u32).filter(|&o| plain[o as usize] > 0 && keep(plain[o as usize])).collect();
            let want_seen: RoaringBitmap = (0..n as u32).filter(|&o| plain[o as usize] > 0).collect();
            prop_assert_eq!(hit, want_hit);
            prop_assert_eq!(seen, want_seen);
        }
    }
}
