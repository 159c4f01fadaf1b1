//! Numeric comparisons (`age >= 60`, `recency_days between 181 and 365`, `avg_ticket >= 100`) as
//! scans of feature columns in their own integer type. A threshold in the language's unit (yuan,
//! days, percent; possibly fractional) becomes, once per question, a range of stored values, found
//! by a binary search with the language's own `f64` formula, so the scan compares integers — the
//! answer is the formula's, boundaries and rounding included. All column comparisons of one `and`
//! are decided in one pass, 64 members to a word, and the answer is built from the words.
//!
//! Ratios (average ticket, items per ticket, margin, discount share) would need a division per
//! member, so their `f64` values are kept as order-preserving keys ([`RatioKeys`]), and beside the
//! keys a 2-byte code per member that keeps their order (from quantiles of the keys: one code for
//! each quantile value itself, one for the values between two): the scan compares codes and reads
//! the keys only in words with a member on a bound's code when that code holds more than one value.
//! Comparing keys is comparing the `f64` values.
//!
//! Missing values never satisfy a comparison: each column's "no value" lies outside every range.

use crate::lang::Cmp;
use roaring::RoaringBitmap;

/// What a comparison asks of a value in the language's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    Cmp(Cmp, f64),
    /// Both bounds inclusive.
    Between(f64, f64),
}

impl Want {
    pub fn holds(self, x: f64) -> bool {
        match self {
            Want::Cmp(c, t) => match c {
                Cmp::Eq => x == t,
                Cmp::Ne => x != t,
                Cmp::Lt => x < t,
                Cmp::Le => x <= t,
                Cmp::Gt => x > t,
                Cmp::Ge => x >= t,
            },
            Want::Between(lo, hi) => x >= lo && x <= hi,
        }
    }
}

/// A feature column as stored.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    U8(&'a [u8]),
    U32(&'a [u32]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    /// [`RatioKeys`]: values are the 64-bit keys (scanned by their 2-byte codes).
    Ratio(&'a RatioKeys),
}

impl Column<'_> {
    fn get(&self, o: usize) -> i64 {
        match self {
            Column::U8(c) => c[o] as i64,
            Column::U32(c) => c[o] as i64,
            Column::I32(c) => c[o] as i64,
            Column::I64(c) => c[o],
            Column::Ratio(r) => r.key(o),
        }
    }

    /// Bytes per member, to scan narrow columns first.
    fn width(&self) -> usize {
        match self {
            Column::U8(_) => 1,
            Column::Ratio(_) => 2,
            Column::U32(_) | Column::I32(_) => 4,
            Column::I64(_) => 8,
        }
    }
}

/// How a field's value (in the language's unit) follows from a stored value `v`.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// The value is `v`.
    Plain,
    /// The value is `v / 100` (fen to yuan).
    Hundredths,
    /// The value is `origin - v` (days since a day: `as_of - last_day`).
    DaysSince(i64),
}

/// One comparison on one column: stored values in `lo..=hi` and not in `ex` match, and `negate`
/// turns the answer over (`not age >= 60`: members without an age match then).
pub struct Test<'a> {
    column: Column<'a>,
    lo: i64,
    hi: i64,
    ex: Option<(i64, i64)>,
    negate: bool,
    /// On a ratio column: the scan by codes of `lo..=hi` and of `ex`, worked out once.
    codes: [Option<CodeRange>; 2],
}

/// A key range `lo..=hi` over [`RatioKeys`] as its scan reads it: members whose code lies in
/// `from..=to` are inside; members on a code in `split` (a bound's code holding several values)
/// are decided by their keys.
#[derive(Debug, Clone, Copy)]
struct CodeRange {
    from: i64,
    to: i64,
    split: [Option<i64>; 2],
    lo: i64,
    hi: i64,
}

impl CodeRange {
    /// `None` when the range is empty.
    fn of(k: &RatioKeys, lo: i64, hi: i64) -> Option<CodeRange> {
        if lo > hi {
            return None;
        }
        // Strictly between the bounds' codes, or on a bound's code and then by the key. An open
        // end (every number) has no bound to refine. A code of one value (a quantile) is decided
        // by the code; a code of the values between two quantiles may straddle the bound.
        let open_low = lo <= ratio_key(f64::NEG_INFINITY);
        let open_high = hi >= ratio_key(f64::INFINITY);
        let (a, b) = (k.code(lo), k.code(hi));
        let (split_a, split_b) = (!open_low && !RatioKeys::single(a), !open_high && !RatioKeys::single(b));
        Some(CodeRange {
            from: if open_low { 1 } else { a as i64 + split_a as i64 },
            to: if open_high { u16::MAX as i64 } else { b as i64 - split_b as i64 },
            split: [split_a.then_some(a as i64), split_b.then_some(b as i64)],
            lo,
            hi,
        })
    }
}

impl<'a> Test<'a> {
    /// `want` on a column whose values `v` in `valid` (inclusive) are present, scaled by `scale`.
    pub fn new(column: Column<'a>, valid: (i64, i64), scale: Scale, want: Want) -> Test<'a> {
        let (min, max) = valid;
        // The field's values x over the valid stored values; x non-decreasing in v or in -v.
        let (xmin, xmax, g): (i128, i128, fn(i128) -> f64) = match scale {
            Scale::Plain => (min as i128, max as i128, |x| x as i64 as f64),
            Scale::Hundredths => (min as i128, max as i128, |x| x as i64 as f64 / 100.0),
            Scale::DaysSince(origin) => (origin as i128 - max as i128, origin as i128 - min as i128, |x| x as f64),
        };
        let (lo, hi, ex) = x_range(want, xmin, xmax, g);
        let to_v = |(a, b): (i128, i128)| -> (i64, i64) {
            let (a, b) = match scale {
                Scale::DaysSince(origin) => (origin as i128 - b, origin as i128 - a),
                _ => (a, b),
            };
            // Clamp to the valid values: an empty range stays empty.
            if a > b { (1, 0) } else { (a.max(min as i128) as i64, b.min(max as i128) as i64) }
        };
        let (lo, hi) = to_v((lo, hi));
        Test { column, lo, hi, ex: ex.map(to_v), negate: false, codes: [None; 2] }
    }

    /// `want` on a ratio kept as [`RatioKeys`].
    pub fn ratio(keys: &'a RatioKeys, want: Want) -> Test<'a> {
        // From the smallest number's key, not `NO_RATIO + 1`: the scan then knows the range is
        // open below and members without a value (code 0) stay out without reading their keys.
        let (min, max) = (ratio_key(f64::NEG_INFINITY), ratio_key(f64::INFINITY));
        let key = |t: f64| ratio_key(t);
        let (lo, hi, ex) = match want {
            Want::Cmp(Cmp::Ne, t) if t.is_nan() => (min, max, None),
            Want::Cmp(_, t) if t.is_nan() => (1, 0, None),
            Want::Between(a, b) if a.is_nan() || b.is_nan() => (1, 0, None),
            Want::Cmp(Cmp::Eq, t) => (key(t), key(t), None),
            Want::Cmp(Cmp::Ne, t) => (min, max, Some((key(t), key(t)))),
            Want::Cmp(Cmp::Lt, t) => (min, key(t) - 1, None),
            Want::Cmp(Cmp::Le, t) => (min, key(t), None),
            Want::Cmp(Cmp::Gt, t) => (key(t) + 1, max, None),
            Want::Cmp(Cmp::Ge, t) => (key(t), max, None),
            Want::Between(a, b) => (key(a), key(b), None),
        };
        let (lo, hi) = (lo.max(min), hi);
        let codes = [CodeRange::of(keys, lo, hi), ex.and_then(|(a, b)| CodeRange::of(keys, a, b))];
        Test { column: Column::Ratio(keys), lo, hi, ex, negate: false, codes }
    }

    pub fn negated(mut self) -> Test<'a> {
        self.negate = !self.negate;
        self
    }

    /// Whether member `o` passes.
    fn passes(&self, o: usize) -> bool {
        let v = self.column.get(o);
        let inside = |(a, b): (i64, i64)| a <= v && v <= b;
        (inside((self.lo, self.hi)) && !self.ex.is_some_and(inside)) != self.negate
    }

    /// The members `base..base + len` (len ≤ 64) that pass, as bits of a word.
    #[inline(always)]
    fn word(&self, base: usize, len: usize) -> u64 {
        let mut w = self.range(base, len, (self.lo, self.hi), self.codes[0]);
        if w != 0
            && let Some(ex) = self.ex
        {
            w &= !self.range(base, len, ex, self.codes[1]);
        }
        if self.negate { !w & low_bits(len) } else { w }
    }

    /// The members `base..base + len` whose stored value is in `lo..=hi` (`codes`: its scan on a
    /// ratio column).
    #[inline(always)]
    fn range(&self, base: usize, len: usize, (lo, hi): (i64, i64), codes: Option<CodeRange>) -> u64 {
        let r = base..base + len;
        match self.column {
            Column::U8(c) => in_range(&c[r], lo, hi),
            Column::U32(c) => in_range(&c[r], lo, hi),
            Column::I32(c) => in_range(&c[r], lo, hi),
            Column::I64(c) => in_range(&c[r], lo, hi),
            Column::Ratio(k) => {
                let Some(p) = codes else { return 0 };
                let c = &k.codes[r.clone()];
                let mut w = in_range(c, p.from, p.to);
                let mut on = 0;
                for code in p.split.into_iter().flatten() {
                    on |= in_range(c, code, code);
                }
                if on != 0 {
                    w |= on & in_range(&k.keys[r], p.lo, p.hi);
                }
                w
            }
        }
    }
}

fn low_bits(len: usize) -> u64 {
    if len >= 64 { u64::MAX } else { (1 << len) - 1 }
}

/// The integer values x in `xmin..=xmax` with `want(g(x))` (g non-decreasing): an inclusive range
/// (empty when lo > hi), and for `!=` the range to leave out.
#[allow(clippy::type_complexity)]
fn x_range(want: Want, xmin: i128, xmax: i128, g: fn(i128) -> f64) -> (i128, i128, Option<(i128, i128)>) {
    // The least x with p(g(x)), p false then true; xmax + 1 when none.
    let least = |p: &dyn Fn(f64) -> bool| {
        let (mut a, mut b) = (xmin, xmax + 1);
        while a < b {
            let m = a + (b - a) / 2;
            if p(g(m)) { b = m } else { a = m + 1 }
        }
        a
    };
    let at_least = |t: f64| least(&|x| x >= t);
    let above = |t: f64| least(&|x| x > t);
    let none = (1, 0, None);
    match want {
        Want::Cmp(Cmp::Ne, t) if t.is_nan() => (xmin, xmax, None),
        Want::Cmp(_, t) if t.is_nan() => none,
        Want::Between(a, b) if a.is_nan() || b.is_nan() => none,
        Want::Cmp(Cmp::Ge, t) => (at_least(t), xmax, None),
        Want::Cmp(Cmp::Gt, t) => (above(t), xmax, None),
        Want::Cmp(Cmp::Le, t) => (xmin, above(t) - 1, None),
        Want::Cmp(Cmp::Lt, t) => (xmin, at_least(t) - 1, None),
        Want::Cmp(Cmp::Eq, t) => (at_least(t), above(t) - 1, None),
        Want::Cmp(Cmp::Ne, t) => {
            let (a, b) = (at_least(t), above(t) - 1);
            (xmin, xmax, (a <= b).then_some((a, b)))
        }
        Want::Between(a, b) => (at_least(a), above(b) - 1, None),
    }
}

/// "No value" among ratio keys (no number has it).
pub const NO_RATIO: i64 = i64::MIN;

/// A value as an order-preserving key: x ≤ y exactly when key(x) ≤ key(y), for numbers (-0.0 is
/// 0.0, as `==` has it).
pub fn ratio_key(x: f64) -> i64 {
    let bits = (x + 0.0).to_bits() as i64;
    if bits < 0 { bits ^ i64::MAX } else { bits }
}

/// A ratio per member as [`ratio_key`]s ([`NO_RATIO`] when there is none), and each key's code:
/// 0 for none; else, with j the number of bounds below the key, 1 + 2j when no bound equals it and
/// 2 + 2j when one does. The bounds are distinct quantiles of the keys taken at the last
/// [`RatioKeys::recode`], so comparing codes orders members as comparing keys does, ties aside; a
/// value many members share (a margin of exactly 20%) is a bound and has a code of its own, and a
/// code between two bounds holds few members. A table by the keys' top bits narrows the search for
/// the bounds below a key. Until bounds are taken every value has code 1.
#[derive(Debug, Clone, Default)]
pub struct RatioKeys {
    keys: Vec<i64>,
    codes: Vec<u16>,
    bounds: std::sync::Arc<Vec<i64>>,
    /// By the top [`PREFIX_BITS`] of a key: how many bounds lie below the keys with those bits
    /// (one more entry at the end).
    below: std::sync::Arc<Vec<u16>>,
}

/// The keys decide equality: the codes follow from them and the bounds.
impl PartialEq for RatioKeys {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

/// Top bits of a key that index [`RatioKeys::below`].
const PREFIX_BITS: u32 = 20;
/// Bounds at most (codes up to 2 + 2 × this fit in 2 bytes), and keys sampled per bound.
const MAX_BOUNDS: usize = (u16::MAX as usize - 2) / 2;
const SAMPLES_PER_BOUND: usize = 8;

fn prefix(k: i64) -> usize {
    ((k >> (64 - PREFIX_BITS)) + (1 << (PREFIX_BITS - 1))) as usize
}

impl RatioKeys {
    pub fn resize(&mut self, n: usize) {
        self.keys.resize(n, NO_RATIO);
        self.codes.resize(n, 0);
    }

    pub fn set(&mut self, o: usize, x: Option<f64>) {
        let k = x.map_or(NO_RATIO, ratio_key);
        self.keys[o] = k;
        self.codes[o] = self.code(k);
    }

    fn key(&self, o: usize) -> i64 {
        self.keys[o]
    }

    /// A key's code (0 only for [`NO_RATIO`]).
    fn code(&self, k: i64) -> u16 {
        if k == NO_RATIO {
            return 0;
        }
        if self.below.is_empty() {
            return 1;
        }
        let p = prefix(k);
        let (a, b) = (self.below[p] as usize, self.below[p + 1] as usize);
        let j = a + self.bounds[a..b].partition_point(|&x| x < k);
        (1 + 2 * j + (self.bounds.get(j) == Some(&k)) as usize) as u16
    }

    /// Whether every member with this code has the same key (a bound's code).
    fn single(code: u16) -> bool {
        code >= 2 && code.is_multiple_of(2)
    }

    /// Takes the bounds afresh from the keys held (quantiles of an even sample of the members with
    /// a value) and codes every member again.
    pub fn recode(&mut self) {
        let n = self.keys.len();
        let step = (n / (MAX_BOUNDS * SAMPLES_PER_BOUND)).max(1);
        let mut sample: Vec<i64> = self.keys.iter().step_by(step).copied().filter(|&k| k != NO_RATIO).collect();
        sample.sort_unstable();
        let m = sample.len().min(MAX_BOUNDS);
        let mut bounds: Vec<i64> = (1..=m).map(|i| sample[i * sample.len() / (m + 1)]).collect();
        bounds.dedup();
        let mut below = Vec::with_capacity((1 << PREFIX_BITS) + 1);
        let mut at = 0;
        for p in 0..=(1usize << PREFIX_BITS) {
            while at < bounds.len() && prefix(bounds[at]) < p {
                at += 1;
            }
            below.push(at as u16);
        }
        self.bounds = std::sync::Arc::new(bounds);
        self.below = std::sync::Arc::new(below);
        for o in 0..n {
            self.codes[o] = self.code(self.keys[o]);
        }
    }
}

/// Stored values of a column type, compared as offsets from the range's low end.
trait Cell: Copy {
    type Offset: Copy + PartialOrd;
    /// The range clamped to the type; `None` when empty.
    fn bounds(lo: i64, hi: i64) -> Option<(Self, Self::Offset)>;
    fn offset(self, lo: Self) -> Self::Offset;
}

macro_rules! cell {
    ($t:ty, $u:ty) => {
        impl Cell for $t {
            type Offset = $u;
            fn bounds(lo: i64, hi: i64) -> Option<($t, $u)> {
                let lo = lo.max(<$t>::MIN as i64);
                let hi = hi.min(<$t>::MAX as i64);
                (lo <= hi).then(|| (lo as $t, (hi as $t).wrapping_sub(lo as $t) as $u))
            }
            #[inline(always)]
            fn offset(self, lo: $t) -> $u {
                self.wrapping_sub(lo) as $u
            }
        }
    };
}
cell!(u8, u8);
cell!(u16, u16);
cell!(u32, u32);
cell!(i32, u32);
cell!(i64, u64);

/// Bits of the values (at most 64) in `lo..=hi`: one comparison each, to byte masks the compiler
/// turns into vector code, then packed.
#[inline(always)]
fn in_range<T: Cell>(values: &[T], lo: i64, hi: i64) -> u64 {
    let Some((lo, span)) = T::bounds(lo, hi) else { return 0 };
    let mut bytes = [0u8; 64];
    if let Ok(full) = <&[T; 64]>::try_from(values) {
        for (b, v) in bytes.iter_mut().zip(full) {
            *b = ((v.offset(lo) <= span) as u8).wrapping_neg();
        }
    } else {
        for (b, v) in bytes.iter_mut().zip(values) {
            *b = ((v.offset(lo) <= span) as u8).wrapping_neg();
        }
    }
    pack(&bytes)
}

/// The top bits of 64 bytes (0 or 0xff each) as one word.
#[inline(always)]
fn pack(bytes: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8};
        let mut w = 0u64;
        for q in 0..4 {
            // SAFETY: SSE2 is part of x86_64; the load reads 16 of the array's 64 bytes.
            let m = unsafe { _mm_movemask_epi8(_mm_loadu_si128(bytes.as_ptr().add(q * 16) as *const __m128i)) };
            w |= (m as u32 as u64 & 0xffff) << (q * 16);
        }
        w
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bytes.iter().enumerate().fold(0u64, |w, (k, b)| w | ((*b as u64 & 1) << k))
    }
}

/// The members of `u` (out of `n`) passing every test. A sparse `u` is visited member by member;
/// otherwise the columns are scanned over `u`'s span, 64 members a word, each test only for the
/// words the previous ones left non-empty, and the words intersected with `u`.
pub fn select(tests: &mut [Test], u: &RoaringBitmap, n: usize) -> RoaringBitmap {
    let (Some(first), Some(last)) = (u.min(), u.max()) else { return RoaringBitmap::new() };
    // Narrow columns first.
    tests.sort_by_key(|t| t.column.width());
    if (u.len() as usize) < n / 16 { sparse(tests, u) } else { dense(tests, u, first, last, n) }
}

fn sparse(tests: &[Test], u: &RoaringBitmap) -> RoaringBitmap {
    RoaringBitmap::from_sorted_iter(u.iter().filter(|&o| tests.iter().all(|t| t.passes(o as usize)))).expect("sorted")
}

fn dense(tests: &[Test], u: &RoaringBitmap, first: u32, last: u32, n: usize) -> RoaringBitmap {
    let start = first as usize / 64 * 64;
    let end = (last as usize + 1).min(n);
    let bytes = words(tests, start, end, first as usize);
    let hit = RoaringBitmap::from_lsb0_bytes(start as u32, &bytes);
    if u.len() == (last - first) as u64 + 1 { hit } else { hit & u }
}

/// Members from which [`dense`] scans on two threads, a half each: at 10M members a scan reads
/// tens of megabytes and one core does not use all of the memory's bandwidth; below this, starting
/// a thread costs more than it saves.
const PARALLEL_SCAN: usize = 1 << 20;

/// The words of [`dense`] (as little-endian bytes), the halves of a long span on two threads.
fn words(tests: &[Test], start: usize, end: usize, first: usize) -> Vec<u8> {
    words_split(tests, start, end, first, PARALLEL_SCAN)
}

/// [`words`] with the span from which the scan is split.
fn words_split(tests: &[Test], start: usize, end: usize, first: usize, parallel: usize) -> Vec<u8> {
    if end - start < parallel.max(128) {
        return words_one(tests, start, end, first);
    }
    // `start` is a word's first member: so is the middle.
    let mid = start + (end - start) / 2 / 64 * 64;
    let (mut low, high) = std::thread::scope(|s| {
        let high = s.spawn(|| words_one(tests, mid, end, first));
        (words_one(tests, start, mid, first), high.join().expect("a scan does not panic"))
    });
    low.extend_from_slice(&high);
    low
}

/// The words of one span, with AVX2 where the processor has it (the portable build has SSE2 only,
/// which has no 64-bit comparison and half the width).
fn words_one(tests: &[Test], start: usize, end: usize, first: usize) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, checked just above.
        return unsafe { words_avx2(tests, start, end, first) };
    }
    words_portable(tests, start, end, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn words_avx2(tests: &[Test], start: usize, end: usize, first: usize) -> Vec<u8> {
    words_portable(tests, start, end, first)
}

#[inline(always)]
fn words_portable(tests: &[Test], start: usize, end: usize, first: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((end - start).div_ceil(64) * 8);
    for base in (start..end).step_by(64) {
        let len = 64.min(end - base);
        // Not the members before `first` in its word.
        let mut w = low_bits(len) & !low_bits(first.saturating_sub(base));
        for t in tests {
            if w == 0 {
                break;
            }
            w &= t.word(base, len);
        }
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmp() -> impl Strategy<Value = Cmp> {
        prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)]
    }

    /// Thresholds at and around integers, hundredths and their halves.
    fn threshold() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-5i64..30).prop_map(|k| k as f64),
            (-500i64..3000).prop_map(|k| k as f64 / 100.0),
            (-500i64..3000).prop_map(|k| k as f64 / 100.0 + 0.005),
            (-50i64..300).prop_map(|k| k as f64 / 10.0),
            // A ratio's exact value, its neighbouring keys, one a little off (as `f32`).
            (-20i64..40).prop_map(|k| k as f64 / 7.0),
            (-20i64..40, -2i64..3).prop_map(|(k, d)| f64::from_bits(((k as f64 / 7.0).to_bits() as i64 + d) as u64)),
            (-20i64..40).prop_map(|k| (k as f64 / 7.0) as f32 as f64),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    fn want() -> impl Strategy<Value = Want> {
        prop_oneof![
            (cmp(), threshold()).prop_map(|(c, t)| Want::Cmp(c, t)),
            (threshold(), threshold()).prop_map(|(a, b)| Want::Between(a, b)),
        ]
    }

    /// Column values drawn near the thresholds, with the column's "no value" mixed in.
    fn values(missing: i64) -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(prop_oneof![(-20i64..40), (-600i64..3100), Just(missing)], 0..300)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// A scan answers as the `f64` formula, member by member, at every boundary: integer and
        /// fractional thresholds, `!=`, `between`, missing values, negation, several tests fused.
        #[test]
        fn scans_answer_as_the_formula(
            raw in values(i32::MIN as i64),
            wants in prop::collection::vec((want(), 0usize..6, any::<bool>()), 1..4),
            keep in prop::collection::vec(any::<bool>(), 300),
            shape in 0..3,
            coded in any::<bool>(),
        ) {
            let n = raw.len();
            let none = i32::MIN as i64;
            let i32s: Vec<i32> = raw.iter().map(|&v| v as i32).collect();
            let u32s: Vec<u32> = raw.iter().map(|&v| v.max(0) as u32).collect();
            let u8s: Vec<u8> = raw.iter().map(|&v| v.clamp(0, 255) as u8).collect();
            let i64s: Vec<i64> = raw.iter().map(|&v| if v == none { i64::MIN } else { v }).collect();
            let (raw, i32s, u32s, u8s, i64s) = (&raw, &i32s, &u32s, &u8s, &i64s);
            let origin = 25i64;
            // A ratio: the raw value / 7 (none when the raw value is missing).
            let ratio = move |o: usize| (raw[o] != none).then(|| raw[o] as f64 / 7.0);
            let mut keys = RatioKeys::default();
            keys.resize(n);
            (0..n).for_each(|o| keys.set(o, ratio(o)));
            // Coded by a table (built on part of the members, as after an update), or not at all.
            if coded {
                let mut part = keys.clone();
                (n / 2..n).for_each(|o| part.set(o, None));
                part.recode();
                keys.bounds = part.bounds.clone();
                keys.below = part.below.clone();
                (0..n).for_each(|o| keys.set(o, ratio(o)));
            }
            let mut tests = Vec::new();
            let mut formulas: Vec<Box<dyn Fn(usize) -> bool + '_>> = Vec::new();
            for &(want, kind, negate) in &wants {
                let (t, f): (Test, Box<dyn Fn(usize) -> bool + '_>) = match kind {
                    0 => (
                        Test::new(Column::I32(i32s), (none + 1, i32::MAX as i64), Scale::Plain, want),
                        Box::new(move |o| i32s[o] as i64 != none && want.holds(i32s[o] as f64)),
                    ),
                    1 => (
                        Test::new(Column::I32(i32s), (none + 1, origin), Scale::DaysSince(origin), want),
                        Box::new(move |o| {
                            let v = i32s[o] as i64;
                            v != none && v <= origin && want.holds((origin - v) as f64)
                        }),
                    ),
                    2 => (
                        Test::new(Column::U8(u8s), (1, 255), Scale::Plain, want),
                        Box::new(move |o| u8s[o] != 0 && want.holds(u8s[o] as f64)),
                    ),
                    3 => (
                        Test::new(Column::U32(u32s), (0, u32::MAX as i64), Scale::Plain, want),
                        Box::new(move |o| want.holds(u32s[o] as f64)),
                    ),
                    4 => (
                        Test::new(Column::I64(i64s), (i64::MIN + 1, i64::MAX), Scale::Hundredths, want),
                        Box::new(move |o| i64s[o] != i64::MIN && want.holds(i64s[o] as f64 / 100.0)),
                    ),
                    _ => (
                        Test::ratio(&keys, want),
                        Box::new(move |o| ratio(o).is_some_and(|x| want.holds(x))),
                    ),
                };
                if negate {
                    tests.push(t.negated());
                    formulas.push(Box::new(move |o| !f(o)));
                } else {
                    tests.push(t);
                    formulas.push(f);
                }
            }
            // A range (from a random first member), most members, or a few.
            let u: RoaringBitmap = match shape {
                0 => (keep.iter().position(|k| *k).unwrap_or(0) as u32..n as u32).collect(),
                1 => (0..n as u32).filter(|&o| keep[o as usize] || o % 3 != 0).collect(),
                _ => (0..n as u32).filter(|&o| keep[o as usize] && o % 5 == 0).collect(),
            };
            let want: RoaringBitmap = u.iter().filter(|&o| formulas.iter().all(|f| f(o as usize))).collect();
            prop_assert_eq!(&sparse(&tests, &u), &want);
            if let (Some(first), Some(last)) = (u.min(), u.max()) {
                prop_assert_eq!(&dense(&tests, &u, first, last, n), &want);
                // The portable words are the vector ones (the test machine may have AVX2).
                let (start, end) = (first as usize / 64 * 64, last as usize + 1);
                let portable = words_portable(&tests, start, end, first as usize);
                prop_assert_eq!(&portable, &words(&tests, start, end, first as usize));
                // Split on two threads (from 128 members here) the words are the same.
                prop_assert_eq!(&portable, &words_split(&tests, start, end, first as usize, 0));
            }
            prop_assert_eq!(select(&mut tests, &u, n), want);
        }
    }

    #[test]
    fn ratio_keys_keep_order() {
        let xs = [f64::NEG_INFINITY, -1e30, -2.5, -1e-300, 0.0, -0.0, 1e-300, 1.0 / 3.0, 0.33333334, 2.5, 1e30];
        for a in xs {
            for b in xs {
                assert_eq!(a <= b, ratio_key(a) <= ratio_key(b), "{a} {b}");
            }
            assert_ne!(ratio_key(a), NO_RATIO);
        }
    }
}
