//! The demo's member-intelligence setup, so that every example of `docs/audience-language.md` runs
//! on the demo chain: drug groups (药品群组), a custom class, and the saved tag 慢病关怀.

use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_store::{Store, StoreError};

/// Engine settings of every demo company (validated by the server like any operator's document).
pub const SETTINGS: &str = r#"{
  "classes": {
    "custom": [ { "name": "三高人群", "groups": ["三高用药"], "min_days": 3 } ]
  },
  "drug_groups": [
    { "name": "阿胶", "brands": ["东阿阿胶"] },
    { "name": "三高用药", "categories": ["降压药", "口服降糖药", "调血脂药"] }
  ]
}"#;

/// The saved tags of every demo company: (name, expression).
pub const TAGS: &[(&str, &str)] =
    &[("慢病关怀", r#"chronic in ("高血压", "糖尿病", "高血脂") or class in ("降压药人群", "口服降糖药人群")"#)];

pub async fn setup(store: &Store, company: CompanyId) -> Result<(), StoreError> {
    let scope = Scope::cli();
    store.set_engine_settings(&scope, company, SETTINGS).await?;
    for (name, expr) in TAGS {
        store.save_expression_tag(&scope, company, name, expr).await?;
    }
    Ok(())
}
