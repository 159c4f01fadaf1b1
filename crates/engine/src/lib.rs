//! rxmember-engine: member intelligence — features per member as of a date, RFM grades, activity
//! levels, purchase-derived classes, tags as compressed bitmaps over dense member ordinals, and
//! audiences evaluated as bitmap algebra plus column scans.
//!
//! Everything here is derived from the store and can be rebuilt from it; the engine never writes
//! to the store.

pub mod audience;
mod beside;
pub mod catalogue;
pub mod classes;
pub mod company;
pub mod counts;
pub mod data;
pub mod derived;
pub mod features;
pub mod grades;
pub mod lang;
pub mod loyalty;
pub mod members;
pub mod numeric;
mod pages;
pub mod postings;
pub mod recent;
pub mod settings;
#[cfg(test)]
mod test_support;
