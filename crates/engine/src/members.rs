//! Members' records as the engine keeps them: a 32-byte record per member, its card number in one
//! byte arena and its clerk and chronic conditions as numbers into tables of the distinct values —
//! instead of the store's [`MemberFact`] with three heap strings of its own (at 10M members, 2.2 GB
//! and 30M allocations down to about 0.5 GB and none per member). Read through [`MemberRef`].

use crate::data::{Day, FastMap, NONE_U32, date_of_day, day_of};
use chrono::NaiveDate;
use rxmember_core::MemberId;
use rxmember_core::facts::MemberFact;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use serde::{Deserialize, Serialize};

/// No day / no value.
const NONE_DAY: Day = crate::features::NONE_I32;

const REFERRED: u8 = 1;
const ALLERGIES: u8 = 2;
const SMS: u8 = 4;
const CONSENT: u8 = 8;

/// One member's record without its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    id: MemberId,
    birthday: Day,
    registered: Day,
    /// Where its card number starts in [`Members::cards`] (a length byte, then the bytes).
    card: u32,
    clerk: u32,
    /// Its list of chronic conditions in [`Members::conditions`] (0: none).
    conditions: u32,
    gender: Gender,
    source: RegistrationSource,
    status: MemberStatus,
    flags: u8,
}

/// Every member's record, by ordinal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    records: Vec<Record>,
    /// Card numbers, each a length byte and its bytes (at most 255: longer ones are cut at a
    /// character boundary; the store's card numbers are far shorter). A changed card number is
    /// appended; the old bytes stay unused.
    cards: Vec<u8>,
    clerks: Vec<String>,
    /// Distinct lists of chronic conditions; the first is the empty one.
    conditions: Vec<Vec<String>>,
    #[serde(skip)]
    clerk_index: FastMap<String, u32>,
    #[serde(skip)]
    condition_index: FastMap<Vec<String>, u32>,
}

impl Default for Members {
    fn default() -> Self {
        Members {
            records: Vec::new(),
            cards: Vec::new(),
            clerks: Vec::new(),
            conditions: vec![Vec::new()],
            clerk_index: FastMap::default(),
            condition_index: FastMap::default(),
        }
    }
}

impl Members {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Member `o`'s record.
    pub fn get(&self, o: usize) -> MemberRef<'_> {
        MemberRef { members: self, r: &self.records[o] }
    }

    /// Asks for member `o`'s record to be brought into the cache ([`crate::pages::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, o: usize) {
        crate::pages::prefetch(self.records.as_ptr().wrapping_add(o));
    }

    /// Every record, in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = MemberRef<'_>> {
        self.records.iter().map(|r| MemberRef { members: self, r })
    }

    /// Sets member `o`'s record (`o` is at most the number held: one past the end adds it); the
    /// registration instant becomes a day at `offset_minutes` from UTC.
    pub fn set(&mut self, o: usize, m: &MemberFact, offset_minutes: i32) {
        // A changed record keeps its card number's bytes when the number is the same (nearly
        // always): only a new number adds bytes, the old ones left unused.
        let card = match self.records.get(o) {
            Some(old) if self.get(o).card_no() == cut(&m.card_no) => old.card,
            _ => self.card(&m.card_no),
        };
        let clerk = m.clerk_code.as_deref().map_or(NONE_U32, |c| self.clerk(c));
        let conditions = self.condition_list(&m.chronic_conditions);
        let flags = (m.referred as u8 * REFERRED)
            | (m.has_allergies as u8 * ALLERGIES)
            | (m.sms_opt_in as u8 * SMS)
            | (m.health_consent as u8 * CONSENT);
        let r = Record {
            id: m.id,
            birthday: m.birthday.map_or(NONE_DAY, crate::data::day_of_date),
            registered: m.registered_at.map_or(NONE_DAY, |r| day_of(r, offset_minutes)),
            card,
            clerk,
            conditions,
            gender: m.gender,
            source: m.source,
            status: m.status,
            flags,
        };
        match self.records.get_mut(o) {
            Some(old) => *old = r,
            None => {
                assert_eq!(o, self.records.len(), "members are added at the end");
                self.records.push(r);
            }
        }
    }

    /// The bytes held: records, card numbers and the distinct clerks' and conditions' strings.
    pub fn bytes(&self) -> usize {
        self.records.len() * std::mem::size_of::<Record>()
            + self.cards.len()
            + self.clerks.iter().map(|c| c.len() + 24).sum::<usize>()
            + self.conditions.iter().flatten().map(|c| c.len() + 24).sum::<usize>()
    }

    /// Whether every record's card number, clerk and conditions are where it says, as a snapshot
    /// read back must hold them.
    pub fn is_whole(&self) -> bool {
        !self.conditions.is_empty()
            && self.conditions[0].is_empty()
            && self.records.iter().all(|r| {
                let at = r.card as usize;
                let card = self.cards.get(at).and_then(|&len| self.cards.get(at + 1..at + 1 + len as usize));
                card.is_some_and(|c| std::str::from_utf8(c).is_ok())
                    && (r.clerk == NONE_U32 || (r.clerk as usize) < self.clerks.len())
                    && (r.conditions as usize) < self.conditions.len()
            })
    }

    /// Rebuilds the lookups of distinct values after deserialising.
    pub fn reindex(&mut self) {
        self.clerk_index = self.clerks.iter().enumerate().map(|(i, c)| (c.clone(), i as u32)).collect();
        self.condition_index = self.conditions.iter().enumerate().map(|(i, c)| (c.clone(), i as u32)).collect();
    }

    fn card(&mut self, card_no: &str) -> u32 {
        let card = cut(card_no);
        let at = u32::try_from(self.cards.len()).expect("card numbers of one company fit in 4 GB");
        self.cards.push(card.len() as u8);
        self.cards.extend_from_slice(card.as_bytes());
        at
    }

    fn clerk(&mut self, code: &str) -> u32 {
        if let Some(&i) = self.clerk_index.get(code) {
            return i;
        }
        let i = self.clerks.len() as u32;
        self.clerks.push(code.to_string());
        self.clerk_index.insert(code.to_string(), i);
        i
    }

    fn condition_list(&mut self, list: &[String]) -> u32 {
        if list.is_empty() {
            return 0;
        }
        if let Some(&i) = self.condition_index.get(list) {
            return i;
        }
        let i = self.conditions.len() as u32;
        self.conditions.push(list.to_vec());
        self.condition_index.insert(list.to_vec(), i);
        i
    }
}

/// A card number as kept: its first 255 bytes at most, cut at a character boundary.
fn cut(card_no: &str) -> &str {
    let mut end = card_no.len().min(u8::MAX as usize);
    while !card_no.is_char_boundary(end) {
        end -= 1;
    }
    &card_no[..end]
}

/// One member's record, read.
#[derive(Clone, Copy)]
pub struct MemberRef<'a> {
    members: &'a Members,
    r: &'a Record,
}

impl<'a> MemberRef<'a> {
    pub fn id(&self) -> MemberId {
        self.r.id
    }

    pub fn card_no(&self) -> &'a str {
        let at = self.r.card as usize;
        let len = self.members.cards[at] as usize;
        std::str::from_utf8(&self.members.cards[at + 1..at + 1 + len]).expect("card numbers are kept whole")
    }

    pub fn clerk_code(&self) -> Option<&'a str> {
        (self.r.clerk != NONE_U32).then(|| self.members.clerks[self.r.clerk as usize].as_str())
    }

    pub fn chronic_conditions(&self) -> &'a [String] {
        &self.members.conditions[self.r.conditions as usize]
    }

    pub fn gender(&self) -> Gender {
        self.r.gender
    }

    pub fn birthday(&self) -> Option<NaiveDate> {
        (self.r.birthday != NONE_DAY).then(|| date_of_day(self.r.birthday))
    }

    /// The local day of registration.
    pub fn registered_day(&self) -> Option<Day> {
        (self.r.registered != NONE_DAY).then_some(self.r.registered)
    }

    pub fn source(&self) -> RegistrationSource {
        self.r.source
    }

    pub fn status(&self) -> MemberStatus {
        self.r.status
    }

    pub fn referred(&self) -> bool {
        self.r.flags & REFERRED != 0
    }

    pub fn has_allergies(&self) -> bool {
        self.r.flags & ALLERGIES != 0
    }

    pub fn sms_opt_in(&self) -> bool {
        self.r.flags & SMS != 0
    }

    pub fn health_consent(&self) -> bool {
        self.r.flags & CONSENT != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fact(id: i64) -> MemberFact {
        let mut m = crate::test_support::member(id);
        m.card_no = format!("卡{id}");
        m
    }

    #[test]
    fn a_record_reads_back_what_was_set() {
        let mut members = Members::default();
        let mut m = fact(7);
        m.gender = Gender::Female;
        m.birthday = NaiveDate::from_ymd_opt(1961, 2, 28);
        // 2024-01-01 15:30 UTC, 23:30 at UTC+8.
        m.registered_at = Some(1_704_123_000_000);
        m.clerk_code = Some("C01".into());
        m.source = RegistrationSource::Wechat;
        m.referred = true;
        m.has_allergies = false;
        m.chronic_conditions = vec!["高血压".into(), "糖尿病".into()];
        m.sms_opt_in = true;
        m.health_consent = false;
        m.status = MemberStatus::Cancelled;
        members.set(0, &m, 480);
        let r = members.get(0);
        assert_eq!(r.id(), MemberId(7));
        assert_eq!(r.card_no(), "卡7");
        assert_eq!(r.gender(), Gender::Female);
        assert_eq!(r.birthday(), NaiveDate::from_ymd_opt(1961, 2, 28));
        assert_eq!(r.registered_day(), Some(day_of(1_704_123_000_000, 480)));
        assert_eq!(r.clerk_code(), Some("C01"));
        assert_eq!(r.source(), RegistrationSource::Wechat);
        assert_eq!((r.referred(), r.has_allergies(), r.sms_opt_in(), r.health_consent()), (true, false, true, false));
        assert_eq!(r.chronic_conditions(), ["高血压".to_string(), "糖尿病".to_string()]);
        assert_eq!(r.status(), MemberStatus::Cancelled);
        // Nothing set reads as nothing.
        members.set(1, &fact(8), 480);
        let r = members.get(1);
        assert_eq!((r.birthday(), r.registered_day(), r.clerk_code()), (None, None, None));
        assert!(r.chronic_conditions().is_empty());
    }

    #[test]
    fn damaged_records_are_not_whole() {
        let mut members = Members::default();
        members.set(0, &fact(1), 0);
        members.set(1, &fact(2), 0);
        assert!(members.is_whole());
        let mut cut = members.clone();
        cut.cards.truncate(cut.cards.len() - 1);
        assert!(!cut.is_whole());
        let mut bad = members.clone();
        bad.records[1].clerk = 3;
        assert!(!bad.is_whole());
        let mut bad = members.clone();
        let at = bad.records[0].card as usize;
        bad.cards[at + 1] = 0xff;
        assert!(!bad.is_whole());
    }

    #[test]
    fn a_record_set_again_keeps_its_card_bytes_unless_the_number_changed() {
        let mut members = Members::default();
        let mut m = fact(1);
        members.set(0, &m, 0);
        let bytes = members.cards.len();
        m.sms_opt_in = true;
        members.set(0, &m, 0);
        assert_eq!(members.cards.len(), bytes);
        assert!(members.get(0).sms_opt_in());
        m.card_no = "新卡1".into();
        members.set(0, &m, 0);
        assert!(members.cards.len() > bytes);
        assert_eq!(members.get(0).card_no(), "新卡1");
    }

    #[test]
    fn a_long_card_number_is_cut_at_a_character_boundary() {
        let mut members = Members::default();
        let mut m = fact(1);
        m.card_no = "卡".repeat(100); // 300 bytes
        members.set(0, &m, 0);
        assert_eq!(members.get(0).card_no(), "卡".repeat(85)); // 255 bytes
    }

    proptest! {
        /// Records set and set again (a changed member), then serialised and read back: every
        /// member reads its latest values, and distinct clerks and condition lists are kept once.
        #[test]
        fn records_read_back_their_latest_values(
            changes in prop::collection::vec((0usize..30, 0usize..5, 0usize..4, "[A-Z0-9]{0,20}", any::<bool>()), 1..120),
        ) {
            let lists: [&[&str]; 4] = [&[], &["高血压"], &["高血压", "糖尿病"], &["哮喘"]];
            let mut members = Members::default();
            let mut want: Vec<MemberFact> = Vec::new();
            for (o, clerk, list, card, sms) in changes {
                let o = o.min(want.len());
                let mut m = fact(o as i64);
                m.card_no = card;
                m.clerk_code = (clerk > 0).then(|| format!("C{clerk}"));
                m.chronic_conditions = lists[list].iter().map(|s| s.to_string()).collect();
                m.sms_opt_in = sms;
                members.set(o, &m, 480);
                if o == want.len() { want.push(m) } else { want[o] = m }
            }
            let bytes = postcard::to_stdvec(&members).unwrap();
            let mut back: Members = postcard::from_bytes(&bytes).unwrap();
            back.reindex();
            for members in [&members, &back] {
                prop_assert_eq!(members.len(), want.len());
                for (o, m) in want.iter().enumerate() {
                    let r = members.get(o);
                    prop_assert_eq!(r.card_no(), m.card_no.as_str());
                    prop_assert_eq!(r.clerk_code(), m.clerk_code.as_deref());
                    prop_assert_eq!(r.chronic_conditions(), &m.chronic_conditions[..]);
                    prop_assert_eq!(r.sms_opt_in(), m.sms_opt_in);
                }
            }
            prop_assert!(members.clerks.len() <= 4 && members.conditions.len() <= 4);
            // The lookups rebuilt after a restore find the values held: set again, none is added twice.
            let mut m = fact(0);
            m.clerk_code = Some("C1".into());
            m.chronic_conditions = vec!["高血压".into()];
            back.set(0, &m, 480);
            prop_assert_eq!(back.get(0).clerk_code(), Some("C1"));
            prop_assert_eq!(back.clerks.iter().filter(|c| *c == "C1").count(), 1);
            prop_assert_eq!(back.conditions.iter().filter(|c| **c == ["高血压".to_string()]).count(), 1);
        }
    }
}
