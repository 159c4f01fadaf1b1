//! Per-company engine settings: RFM thresholds, activity levels, class rules and drug groups. Stored
//! as JSON by the server (one document per company); every field has a default, so `{}` is valid.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub rfm: RfmSettings,
    pub activity: ActivitySettings,
    pub classes: ClassSettings,
    pub drug_groups: Vec<DrugGroup>,
}

/// RFM thresholds. Each of R, F, M is "high" when strictly better than its threshold: fewer days since
/// the last purchase than `r_days`, more tickets than `f_tickets`, more net spend than `m_yuan`, all
/// over the last 12 months. A threshold left empty is the company's median among effective members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RfmSettings {
    pub r_days: Option<i64>,
    pub f_tickets: Option<i64>,
    pub m_yuan: Option<f64>,
}

/// Activity levels (活跃度), checked in this order: never purchased; lost (no purchase for
/// `lost_days`); sleeping (none for `sleeping_days`); new (first purchase within `new_days`); core
/// (at least `core_tickets` tickets in 12 months); otherwise active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivitySettings {
    pub new_days: i64,
    pub core_tickets: i64,
    pub sleeping_days: i64,
    pub lost_days: i64,
}

impl Default for ActivitySettings {
    fn default() -> Self {
        ActivitySettings { new_days: 90, core_tickets: 6, sleeping_days: 180, lost_days: 365 }
    }
}

/// Purchase-derived classes (消费人群). Every category of the taxonomy, major and minor, is a class
/// `<name>人群`: a member is in it with purchases on at least `min_days` days within `window_days`,
/// or with at least one purchase making `min_share_percent` of their spend in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassSettings {
    pub window_days: i64,
    pub min_days: i64,
    pub min_share_percent: f64,
    /// Company-defined classes in addition to the taxonomy's.
    pub custom: Vec<CustomClass>,
}

impl Default for ClassSettings {
    fn default() -> Self {
        ClassSettings { window_days: 365, min_days: 2, min_share_percent: 30.0, custom: Vec::new() }
    }
}

/// A company's own class: purchases of the given categories (major or minor, by code or name)
/// and/or drug groups, with the class rule's thresholds (the defaults when empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomClass {
    pub name: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub window_days: Option<i64>,
    #[serde(default)]
    pub min_days: Option<i64>,
    #[serde(default)]
    pub min_share_percent: Option<f64>,
}

/// A drug group (药品群组): a named set of products, by code, category, manufacturer or brand. A
/// product is in the group if it matches any of the lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrugGroup {
    pub name: String,
    pub products: Vec<String>,
    pub categories: Vec<String>,
    pub manufacturers: Vec<String>,
    pub brands: Vec<String>,
}

impl Settings {
    /// Checks what serde cannot: names present and unique, thresholds in range.
    pub fn validate(&self) -> Result<(), String> {
        let a = &self.activity;
        if a.new_days < 1 || a.sleeping_days < 1 || a.lost_days <= a.sleeping_days || a.core_tickets < 1 {
            return Err(
                "activity: need new_days ≥ 1, core_tickets ≥ 1, sleeping_days ≥ 1 and lost_days > sleeping_days".into(),
            );
        }
        let c = &self.classes;
        if c.window_days < 1 || c.min_days < 1 || !(0.0..=100.0).contains(&c.min_share_percent) {
            return Err("classes: need window_days ≥ 1, min_days ≥ 1 and 0 ≤ min_share_percent ≤ 100".into());
        }
        let mut names = std::collections::HashSet::new();
        for g in &self.drug_groups {
            if g.name.trim().is_empty() || !names.insert(("group", g.name.trim())) {
                return Err(format!("drug group name empty or repeated: {:?}", g.name));
            }
        }
        for k in &self.classes.custom {
            if k.name.trim().is_empty() || !names.insert(("class", k.name.trim())) {
                return Err(format!("custom class name empty or repeated: {:?}", k.name));
            }
            if k.categories.is_empty() && k.groups.is_empty() {
                return Err(format!("custom class {:?} names no category or group", k.name));
            }
        }
        Ok(())
    }
}
