//! Background loyalty jobs while the server runs: the points of newly imported tickets and returns
//! every few minutes, and the daily jobs (expiry, event coupons, the tier review on its day) once per
//! company and local day. Every job is idempotent, so a restart that runs them again changes nothing.

use rxmember_core::org::Scope;
use rxmember_core::time::{local_date, now_ms};
use rxmember_store::Store;
use std::collections::HashMap;
use std::time::Duration;

/// Starts the loop; `every` is the accrual interval.
pub fn spawn(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let scope = Scope { actor: "job:loyalty".into(), ..Scope::cli() };
        let mut daily_done: HashMap<i64, chrono::NaiveDate> = HashMap::new();
        loop {
            match store.companies(&scope).await {
                Ok(companies) => {
                    for c in companies {
                        match store.accrue_points(&scope, c.id).await {
                            Ok((0, 0)) => {}
                            Ok((t, r)) => tracing::info!(company = %c.code, tickets = t, returns = r, "points accrued"),
                            Err(e) => tracing::warn!(company = %c.code, error = %e, "points accrual failed"),
                        }
                        let today = local_date(now_ms(), c.utc_offset_minutes);
                        if daily_done.get(&c.id.0) == Some(&today) {
                            continue;
                        }
                        if let Err(e) = daily(&store, &scope, c.id, today).await {
                            tracing::warn!(company = %c.code, error = %e, "daily loyalty jobs failed");
                        } else {
                            daily_done.insert(c.id.0, today);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "loyalty jobs: cannot list companies"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

async fn daily(
    store: &Store,
    scope: &Scope,
    company: rxmember_core::CompanyId,
    day: chrono::NaiveDate,
) -> rxmember_store::Result<()> {
    let (lots, points) = store.expire_points(scope, company, day).await?;
    let issued = store.issue_event_coupons(scope, company, day).await?;
    let rules = store.loyalty_rules(scope, company).await?;
    let reviewed =
        if rules.tiers.is_review_day(day) { Some(store.review_tiers(scope, company, day).await?) } else { None };
    tracing::info!(company = company.0, %day, lots, points, coupons = issued.issued, ?reviewed, "daily loyalty jobs");
    Ok(())
}
