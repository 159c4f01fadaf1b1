//! rxmember-engine: member intelligence — features per member as of a date, RFM grades, activity
//! levels, purchase-derived classes, tags as compressed bitmaps over dense member ordinals, and
//! audiences evaluated as bitmap algebra plus column scans.
//!
//! Everything here is derived from the store and can be rebuilt from it; the engine never writes
//! to the store. Not built yet: this is the next issue's work (see docs/architecture.md).
