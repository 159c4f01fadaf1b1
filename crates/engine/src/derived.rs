//! Everything computed from a company's facts for one as-of day: features, grades, activity levels,
//! classes, drug-group buyers, the tag catalogue and saved tags. Recomputed after every refresh and
//! for queries on another day; never persisted.

use crate::audience;
use crate::catalogue::{self, Dimension};
use crate::classes::{self, Class};
use crate::data::{CompanyData, Day, Touched};
use crate::features::Features;
use crate::grades::{self, ActivityLevel, RfmCounts, RfmGrade, RfmThresholds};
use crate::settings::Settings;
use roaring::RoaringBitmap;
use rxmember_core::MemberId;
use rxmember_core::taxonomy::Taxonomy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A saved tag (保存的标签): an audience expression under a name, or a list of members (uploaded card
/// numbers, resolved to members by the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedTag {
    pub name: String,
    pub expression: Option<String>,
    #[serde(default)]
    pub members: Vec<MemberId>,
}

/// A drug group with its products (indices) and the members who bought any of them in 12 months.
#[derive(Debug, Clone)]
pub struct GroupMembers {
    pub name: String,
    pub products: Vec<u32>,
    /// Shared with the catalogue's `drug_group` value.
    pub members: Arc<RoaringBitmap>,
}

#[derive(Clone, Default)]
pub struct Derived {
    pub as_of: Day,
    pub features: Features,
    pub grades: Vec<RfmGrade>,
    pub thresholds: RfmThresholds,
    /// The effective members by R, F and M value, behind the medians.
    pub rfm_counts: RfmCounts,
    pub activity: Vec<ActivityLevel>,
    pub classes: Vec<Class>,
    pub groups: Vec<GroupMembers>,
    pub catalogue: Vec<Dimension>,
    /// Saved tags in the order given; a tag whose expression fails keeps its error.
    pub saved: Vec<(String, Result<RoaringBitmap, String>)>,
    pub universe: RoaringBitmap,
    /// Members with any health check (prefilter for `checked(...)`).
    pub checked: RoaringBitmap,
    /// Points expiring per member within 30 days from the as-of day (members with some only).
    pub expiring_30d: HashMap<u32, i64>,
    /// How long each phase of the computation took (milliseconds), for benchmarks.
    pub timings: Vec<(&'static str, f64)>,
}

impl Derived {
    pub fn compute(
        data: &CompanyData,
        taxonomy: &Taxonomy,
        settings: &Settings,
        saved_tags: &[SavedTag],
        as_of: Day,
    ) -> Derived {
        Self::derive(data, taxonomy, settings, saved_tags, as_of, None)
    }

    /// What `compute` would give after `data` changed only for `touched` members (new members are
    /// always touched), when nothing else changed: the same day, settings, taxonomy and saved tags.
    /// Per-member features, classes and activity levels are computed again for those members only;
    /// the grades' medians come from counts of R, F and M values kept up to date by the touched
    /// members, and when a threshold moved, the members between its old and new place are graded
    /// again; the catalogue places again only the members whose facts, grade or
    /// activity level changed (for the attribute dimensions: whose record or loyalty state
    /// changed); saved tags are computed again in full.
    /// `prev`'s columns and bitmaps are reused and changed in place, not copied; a bitmap `prev`
    /// shares with a reader (a clone of it) is copied when it changes.
    pub fn update(
        prev: Derived,
        data: &CompanyData,
        taxonomy: &Taxonomy,
        settings: &Settings,
        saved_tags: &[SavedTag],
        touched: &Touched,
    ) -> Derived {
        let as_of = prev.as_of;
        Self::derive(data, taxonomy, settings, saved_tags, as_of, Some((prev, touched)))
    }

    fn derive(
        data: &CompanyData,
        taxonomy: &Taxonomy,
        settings: &Settings,
        saved_tags: &[SavedTag],
        as_of: Day,
        prev: Option<(Derived, &Touched)>,
    ) -> Derived {
        let (mut prev, touched, records) = match prev {
            Some((p, t)) => (Some(p), Some(&t.all), Some(&t.records)),
            None => (None, None, None),
        };
        let mut timings = Vec::new();
        let mut clock = std::time::Instant::now();
        let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
            timings.push((name, clock.elapsed().as_secs_f64() * 1000.0));
            clock = std::time::Instant::now();
        };
        // The catalogue's class and drug-group values share those bitmaps: let go of them first, so
        // that the classes are updated in place.
        let prev_catalogue = prev.as_mut().map(|p| catalogue::without_shared(std::mem::take(&mut p.catalogue)));
        // Features and classes are independent: one thread each.
        let prev_classes = prev.as_mut().map(|p| std::mem::take(&mut p.classes));
        let prev_features = prev.as_mut().map(|p| std::mem::take(&mut p.features));
        // The touched members' R, F, M before: the grades' counts take them out.
        let old_rfm: Vec<(u32, Option<[i64; 3]>)> = match (&prev_features, touched) {
            (Some(f), Some(touched)) => touched
                .iter()
                .map(|o| {
                    (o, ((o as usize) < f.frequency_12m.len()).then(|| grades::rfm_value(f, o as usize)).flatten())
                })
                .collect(),
            _ => Vec::new(),
        };
        // The classes' thread, once done, helps with the features: it computes rows of the members
        // left (every member in a full build, the touched ones in an update) for this thread to
        // write.
        let work = match (&prev_features, touched) {
            (Some(_), Some(t)) => crate::features::Work::new(data, as_of, t),
            _ => crate::features::Work::all(data, as_of),
        };
        let (rows_out, rows) = std::sync::mpsc::channel();
        let (features, classes) = std::thread::scope(|s| {
            let work = &work;
            let classes = s.spawn(move || {
                let classes = match (prev_classes, touched) {
                    (Some(c), Some(touched)) => classes::update(c, data, taxonomy, settings, as_of, touched),
                    _ => classes::compute(data, taxonomy, settings, as_of),
                };
                work.rows(rows_out);
                classes
            });
            let features = match (prev_features, touched) {
                (Some(mut f), Some(_)) => {
                    f.share(work, rows);
                    f
                }
                _ => Features::compute_shared(work, rows),
            };
            (features, classes.join().expect("class computation does not panic"))
        });
        lap("features and classes", &mut timings);
        // Members whose tag values may differ from the previous catalogue: touched ones, and those
        // whose grade moved with the medians (activity levels change with a member's own features).
        let (grades, thresholds, rfm_counts, activity, changed) = match (prev.as_mut(), touched) {
            (Some(p), Some(touched)) => {
                let mut grades = std::mem::take(&mut p.grades);
                let mut counts = std::mem::take(&mut p.rfm_counts);
                let (thresholds, moved) = grades::update_rfm_grades(
                    &mut grades,
                    p.thresholds,
                    &mut counts,
                    &old_rfm,
                    &features,
                    &settings.rfm,
                    touched,
                );
                let mut activity = std::mem::take(&mut p.activity);
                grades::update_activity_levels(&mut activity, &features, &settings.activity, touched);
                (grades, thresholds, counts, activity, Some(moved | touched))
            }
            _ => {
                let (grades, thresholds, counts) = grades::rfm_grades(&features, &settings.rfm);
                (grades, thresholds, counts, grades::activity_levels(&features, &settings.activity), None)
            }
        };
        lap("grades", &mut timings);
        let mut universe = RoaringBitmap::new();
        universe.insert_range(0..data.len() as u32);
        // As plain bit containers: every question starts from the universe, and the crate's
        // operations between run containers and others are several times slower (at 10M members
        // `bought(...) and not checked(...)` took 18 ms against 7).
        universe.remove_run_compression();
        let checked = match (prev.as_mut(), touched) {
            (Some(p), Some(touched)) => {
                let mut checked = std::mem::take(&mut p.checked);
                checked -= touched;
                checked |=
                    RoaringBitmap::from_sorted_iter(touched.iter().filter(|&o| !data.checks(o as usize).is_empty()))
                        .expect("touched members ascend");
                checked
            }
            _ => data.checked_members(),
        };
        let mut d = Derived {
            as_of,
            features,
            grades,
            thresholds,
            rfm_counts,
            activity,
            classes,
            groups: Vec::new(),
            catalogue: Vec::new(),
            saved: Vec::new(),
            universe,
            checked,
            expiring_30d: data.loyalty.expiring_between(as_of, as_of + 29),
            timings: Vec::new(),
        };
        d.groups = settings
            .drug_groups
            .iter()
            .map(|g| {
                let products = classes::products_in_group(data, taxonomy, g);
                let members = Arc::new(audience::bought_within_year(data, &d, &products));
                GroupMembers { name: g.name.clone(), products, members }
            })
            .collect();
        let groups: Vec<(String, Arc<RoaringBitmap>)> =
            d.groups.iter().map(|g| (g.name.clone(), Arc::clone(&g.members))).collect();
        lap("drug groups", &mut timings);
        d.catalogue = catalogue::build(catalogue::Inputs {
            prev: prev_catalogue
                .zip(changed.as_ref().zip(records))
                .map(|(dims, (any, records))| (dims, catalogue::Changed { any, records })),
            data,
            features: &d.features,
            grades: &d.grades,
            activity: &d.activity,
            classes: &d.classes,
            groups: &groups,
            expiring_30d: &d.expiring_30d,
        });
        lap("catalogue", &mut timings);
        for t in saved_tags {
            let result = match &t.expression {
                Some(text) => audience::evaluate_text(data, taxonomy, &d, text, &d.universe).map_err(|e| e.to_string()),
                None => Ok(data.ordinals_of(&t.members.iter().map(|m| m.0).collect())),
            };
            d.saved.push((t.name.clone(), result));
        }
        lap("saved tags", &mut timings);
        d.timings = timings;
        d
    }
}
