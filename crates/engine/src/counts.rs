//! Per-member counts up to a cap, for `times` conditions (`bought(..., times >= 2)`,
//! `checked(..., times >= 3)`): kept as bit planes, plane j holding the members counted more than j
//! times. Counting is random access by member, so at 10M members a counter per member (40 MB) or
//! even the planes (cap × 1.25 MB) miss the core's cache on nearly every posting. The members are
//! therefore first appended to lists by part of the member range (sequential writes), then each part
//! is counted in planes small enough for the core's cache (cap × 64 KB). The answer comes out as
//! bitmap words. ("Any" questions need no count: one bit array, which mostly stays in the cache,
//! answers them faster.)

use crate::lang::Cmp;
use roaring::RoaringBitmap;

/// Counts above this are not kept as planes (the caller counts another way).
pub const MAX_CAP: u32 = 16;

/// The cap that decides `conditions` (`(cmp, threshold)` each, all to hold): counts at or above it
/// pass or fail alike. `None` when it is above [`MAX_CAP`].
pub fn cap(conditions: &[(Cmp, f64)]) -> Option<u32> {
    let mut cap = 1.0f64;
    for &(c, t) in conditions {
        if !t.is_nan() {
            // `>= t` and `< t` are settled from ceil(t) on, the others from floor(t) + 1 on.
            cap = cap.max(if matches!(c, Cmp::Ge | Cmp::Lt) { t.ceil() } else { t.floor() + 1.0 });
        }
    }
    (cap <= MAX_CAP as f64).then_some(cap as u32)
}

/// Of one word's count planes (plane c: the members counted more than c times; the last, of
/// `pass.len()`, meaning "that many or more"), the members whose count c + 1 passes (`pass[c]`).
#[inline]
pub(crate) fn passing(pass: &[bool], plane: impl Fn(usize) -> u64) -> u64 {
    let mut x = 0;
    for (c, _) in pass.iter().enumerate().filter(|(_, p)| **p) {
        x |= plane(c) & !if c + 1 < pass.len() { plane(c + 1) } else { 0 };
    }
    x
}

/// Members in one part of the member range (2^19: a part's planes are cap × 64 KB).
const PART_BITS: u32 = 19;
/// In a part's list: the end of a day (see [`Counts::once_a_day`]).
const DAY_END: u32 = u32::MAX;
/// In a part's list: a member seen but not counted (see [`Counts::add_if`]).
const SKIP: u32 = 1 << 31;

/// Counts of members `0..n` (n < 2^31), up to a cap.
pub struct Counts {
    n: usize,
    cap: usize,
    part_bits: u32,
    /// Members to count, by part, in the order given (a day's repeats are counted once).
    parts: Vec<Vec<u32>>,
    daily: bool,
}

impl Counts {
    pub fn new(n: usize, cap: u32) -> Counts {
        Counts::with_parts(n, cap, PART_BITS)
    }

    /// Parts of 2^part_bits members (at least 64).
    fn with_parts(n: usize, cap: u32, part_bits: u32) -> Counts {
        assert!(n < SKIP as usize, "member ordinals must stay below 2^31");
        let parts = vec![Vec::new(); n.div_ceil(1 << part_bits).max(1)];
        Counts { n, cap: cap.max(1) as usize, part_bits: part_bits.max(6), parts, daily: false }
    }

    /// Counts member `o` once more (up to the cap) if `yes`. Appended with a flag rather than
    /// behind a branch: a mispredicted branch per posting costs more than the append.
    #[inline]
    pub fn add_if(&mut self, o: u32, yes: bool) {
        self.parts[(o >> self.part_bits) as usize].push(o | (!yes as u32) << 31);
    }

    /// Counts member `o` once for the current day however often it is seen that day; call
    /// [`Counts::end_day`] between days. Not to be mixed with [`Counts::add_if`].
    #[inline]
    pub fn once_a_day(&mut self, o: u32) {
        self.daily = true;
        self.parts[(o >> self.part_bits) as usize].push(o);
    }

    pub fn end_day(&mut self) {
        if self.daily {
            for list in &mut self.parts {
                if list.last().is_some_and(|&e| e != DAY_END) {
                    list.push(DAY_END);
                }
            }
        }
    }

    /// The members whose count passes `keep`, and the members counted at all.
    pub fn select(self, keep: impl Fn(u32) -> bool) -> (RoaringBitmap, RoaringBitmap) {
        let cap = self.cap;
        // Which exact counts 1..=cap (cap meaning "cap or more") pass.
        let pass: Vec<bool> = (1..=cap as u32).map(&keep).collect();
        let words = self.n.div_ceil(64);
        let part_words = 1 << (self.part_bits - 6);
        let mut hit = vec![0u8; words * 8];
        let mut seen = vec![0u8; words * 8];
        // Plane j of word w of the part is planes[w * cap + j]: a member's planes share a line.
        let mut planes = vec![0u64; part_words * cap];
        let mut today = vec![0u64; part_words];
        for (p, list) in self.parts.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            planes.fill(0);
            let base = (p << self.part_bits) as u32;
            let mut day_start = 0;
            for (i, &e) in list.iter().enumerate() {
                if e == DAY_END {
                    for &o in &list[day_start..i] {
                        today[((o - base) >> 6) as usize] = 0;
                    }
                    day_start = i + 1;
                    continue;
                }
                let r = (e & !SKIP) - base;
                let (w, b) = ((r >> 6) as usize, 1u64 << (r & 63));
                let mut bit = b & ((e >> 31) as u64).wrapping_sub(1);
                if self.daily {
                    bit &= !today[w];
                    today[w] |= b;
                }
                let planes = &mut planes[w * cap..(w + 1) * cap];
                for j in (1..cap).rev() {
                    planes[j] |= planes[j - 1] & bit;
                }
                planes[0] |= bit;
            }
            for &o in &list[day_start..] {
                today[(((o & !SKIP) - base) >> 6) as usize] = 0;
            }
            let first = p * part_words;
            for w in 0..part_words.min(words - first) {
                let planes = &planes[w * cap..(w + 1) * cap];
                let x = passing(&pass, |c| planes[c]);
                hit[(first + w) * 8..(first + w + 1) * 8].copy_from_slice(&x.to_le_bytes());
                seen[(first + w) * 8..(first + w + 1) * 8].copy_from_slice(&planes[0].to_le_bytes());
            }
        }
        (RoaringBitmap::from_lsb0_bytes(0, &hit), RoaringBitmap::from_lsb0_bytes(0, &seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Counts by planes answer as plain counters, once a day or every time, over several parts.
        #[test]
        fn planes_count_as_counters(
            days in prop::collection::vec(prop::collection::vec((0u32..150, any::<bool>()), 0..40), 0..8),
            daily in any::<bool>(),
            part_bits in 6u32..9,
            cmp in prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)],
            t in (-2i32..12).prop_map(|k| k as f64 / 2.0),
        ) {
            let n = 150;
            let conditions = [(cmp, t)];
            let keep = |c: u32| crate::numeric::Want::Cmp(cmp, t).holds(c as f64);
            let mut counts = Counts::with_parts(n, cap(&conditions).unwrap(), part_bits);
            let mut plain = vec![0u32; n];
            for day in &days {
                let mut seen = std::collections::HashSet::new();
                for &(o, yes) in day {
                    if daily {
                        counts.once_a_day(o);
                        if seen.insert(o) {
                            plain[o as usize] += 1;
                        }
                    } else {
                        counts.add_if(o, yes);
                        plain[o as usize] += yes as u32;
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
