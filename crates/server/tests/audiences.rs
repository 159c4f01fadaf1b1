//! Member-intelligence API tests on the tiny demo chain (SQLite, or PostgreSQL with RXMEMBER_TEST_PG):
//! the tag catalogue, audience counts and their algebra, scopes, expression errors, exports, saved
//! tags, and the engine catching up with imports (including tickets that arrive before their member).

mod common;

use axum::http::StatusCode;
use common::{App, app, call, login};
use rxmember_core::org::Scope;
use serde_json::json;

async fn count(app: &App, cookie: &str, company: &str, expr: &str) -> u64 {
    let (status, body, _) = call(
        app,
        "POST",
        "/api/v1/audiences/count",
        Some(cookie),
        None,
        Some(json!({"company": company, "expression": expr})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{expr}: {body}");
    body["count"].as_u64().unwrap()
}

#[tokio::test]
async fn catalogue_counts_and_audience_algebra() {
    let app = app().await;
    let admin = login(&app, "tjg-admin").await;
    let (status, tags, _) = call(&app, "GET", "/api/v1/tags", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    let dims = tags["dimensions"].as_array().unwrap();
    let primaries: std::collections::HashSet<&str> = dims.iter().map(|d| d["primary"].as_str().unwrap()).collect();
    assert_eq!(primaries.len(), 4);
    assert!(dims.len() >= 24, "{} secondary dimensions", dims.len());
    let (_, page, _) = call(&app, "GET", "/api/v1/members?per_page=1", Some(&admin), None, None).await;
    let members = page["total"].as_u64().unwrap();
    assert_eq!(count(&app, &admin, "TJG", "all").await, members);
    // Every member has exactly one grade and one activity level.
    for key in ["grade", "activity", "gender", "age_band"] {
        let d = dims.iter().find(|d| d["key"] == key).unwrap();
        let sum: u64 = d["values"].as_array().unwrap().iter().map(|v| v["count"].as_u64().unwrap()).sum();
        assert_eq!(sum, members, "{key}");
    }
    // A tag value counts the same through the language.
    let grade = dims.iter().find(|d| d["key"] == "grade").unwrap();
    let keep = grade["values"].as_array().unwrap().iter().find(|v| v["name"] == "重要保持").unwrap()["count"]
        .as_u64()
        .unwrap();
    assert!(keep > 0);
    assert_eq!(count(&app, &admin, "TJG", r#"grade = "重要保持""#).await, keep);
    assert_eq!(count(&app, &admin, "TJG", r#"tag = "RFM等级/重要保持""#).await, keep);
    // Complements and inclusion–exclusion hold.
    let a = r#"gender = "女""#;
    let b = "bought(within = 180d)";
    let (na, nb) = (count(&app, &admin, "TJG", a).await, count(&app, &admin, "TJG", b).await);
    assert_eq!(na + count(&app, &admin, "TJG", &format!("not {a}")).await, members);
    let and = count(&app, &admin, "TJG", &format!("{a} and {b}")).await;
    let or = count(&app, &admin, "TJG", &format!("{a} or {b}")).await;
    assert_eq!(or + and, na + nb);
    assert!(and > 0 && and < na, "the demo has women who bought recently and women who did not");
    // The examples of the issue run.
    for e in [
        r#"grade in ("重要保持", "重要发展") and gender = "女" and age between 50 and 70"#,
        r#"bought(category = "口服降糖药", within = 365d) and not checked(kind = "血糖", within = 365d)"#,
        "registered(within = 90d) and frequency_12m < 2",
    ] {
        count(&app, &admin, "TJG", e).await;
    }
    // The JSON form gives the same answer as the text.
    let (_, body, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/count",
        Some(&admin),
        None,
        Some(json!({"expr": {"op": "compare", "field": "gender", "cmp": "eq", "value": {"str": "女"}}})),
    )
    .await;
    assert_eq!(body["count"].as_u64().unwrap(), na, "{body}");
    app.db.cleanup().await;
}

#[tokio::test]
async fn errors_scopes_exports_and_saved_tags() {
    let app = app().await;
    let admin = login(&app, "tjg-admin").await;
    let (status, body, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/count",
        Some(&admin),
        None,
        Some(json!({"expression": "gender = \"女\" and agee > 3"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_expression");
    assert_eq!(body["error"]["offset"], 17, "{body}");
    assert!(body["error"]["message_en"].as_str().unwrap().contains("age"), "{body}");
    let (status, body, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/count",
        Some(&admin),
        None,
        Some(json!({"expression": "bought(category = \"不存在的品类\")"})),
    )
    .await;
    assert_eq!((status, body["error"]["offset"].clone()), (StatusCode::BAD_REQUEST, json!(7)), "{body}");

    // Narrower scopes see fewer members; another company is refused.
    let all = count(&app, &admin, "TJG", "all").await;
    let manager = login(&app, "tjg-manager").await;
    let clerk = login(&app, "tjg-clerk").await;
    let in_stores = count(&app, &manager, "TJG", "all").await;
    let own = count(&app, &clerk, "TJG", "all").await;
    assert!(in_stores < all && own < in_stores, "{all} {in_stores} {own}");
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/count",
        Some(&admin),
        None,
        Some(json!({"company": "SCTJ", "expression": "all"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A page of members and a CSV export with chosen columns (audited).
    let expr = "frequency_12m >= 2";
    let n = count(&app, &admin, "TJG", expr).await;
    let (_, page, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/members",
        Some(&admin),
        None,
        Some(json!({"expression": expr, "columns": ["card_no", "frequency_12m"], "limit": 5})),
    )
    .await;
    assert_eq!(page["total"].as_u64().unwrap(), n);
    for row in page["rows"].as_array().unwrap() {
        assert!(row[1].as_str().unwrap().parse::<u32>().unwrap() >= 2, "{row}");
    }
    let (status, csv, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/export",
        Some(&admin),
        None,
        Some(json!({"expression": expr, "columns": ["card_no", "grade", "monetary_12m"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with("\u{feff}会员卡号,RFM等级,近12月消费金额"), "{csv}");
    assert_eq!(csv.lines().count() as u64, n + 1);
    let entries = app.db.store.audit_entries(&Scope::cli(), 20).await.unwrap();
    assert!(entries.iter().any(|e| e.action == "audience.export" && e.actor == "staff:tjg-admin"));
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/export",
        Some(&admin),
        None,
        Some(json!({"expression": expr, "columns": ["phone"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Saved tags: an expression and a hand-made list; managers may not save.
    let (status, body, _) =
        call(&app, "POST", "/api/v1/tags", Some(&admin), None, Some(json!({"name": "常客", "expression": expr}))).await;
    assert_eq!((status, body["count"].as_u64()), (StatusCode::OK, Some(n)), "{body}");
    assert_eq!(count(&app, &admin, "TJG", r#"tag = "常客""#).await, n);
    let cards: Vec<String> =
        page["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
    let (_, body, _) = call(
        &app,
        "POST",
        "/api/v1/tags",
        Some(&admin),
        None,
        Some(json!({"name": "回访名单", "cards": [cards[0], cards[1], "NO-SUCH-CARD"]})),
    )
    .await;
    assert_eq!(body["count"], 2, "{body}");
    assert_eq!(body["unknown_cards"], json!(["NO-SUCH-CARD"]));
    assert_eq!(count(&app, &admin, "TJG", r#"tag = "回访名单" and tag = "常客""#).await, 2);
    let (status, _, _) =
        call(&app, "POST", "/api/v1/tags", Some(&manager), None, Some(json!({"name": "x", "expression": "all"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&app, "DELETE", "/api/v1/tags/常客", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/v1/audiences/count",
        Some(&admin),
        None,
        Some(json!({"expression": "tag = \"常客\""})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.db.cleanup().await;
}

#[tokio::test]
async fn the_engine_catches_up_with_imports() {
    let app = app().await;
    let cli = Scope::cli();
    let company = app.db.store.company_by_code(&cli, "TJG").await.unwrap();
    let token = app.db.store.create_api_token(&cli, company.id, "erp").await.unwrap();
    let admin = login(&app, "tjg-admin").await;
    let (_, stores, _) = call(&app, "GET", "/api/v1/stores", Some(&admin), None, None).await;
    let store = stores["stores"][0]["code"].as_str().unwrap().to_string();
    let (_, products, _) = call(&app, "GET", "/api/v1/products?q=硝苯地平", Some(&admin), None, None).await;
    let product = products["products"][0]["code"].as_str().unwrap().to_string();
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let new_buyers = "bought(within = 1d) and registered(within = 1d)";
    let before = count(&app, &admin, "TJG", new_buyers).await;
    let total_before = count(&app, &admin, "TJG", "all").await;

    // A ticket for a card nobody holds yet, then the member: the ticket links to the member and the
    // engine re-reads the member's history.
    let sale = |ticket: &str, card: &str| {
        json!([{"ticket_no": ticket, "sold_at": format!("{today} 09:30:00"), "store_code": store, "card_no": card,
                "product_code": product, "quantity": "1", "amount": "25.00"}])
    };
    let (status, body, _) =
        call(&app, "POST", "/api/v1/import/sales", None, Some(&token), Some(sale("ENG-1", "ENG-CARD"))).await;
    assert_eq!((status, body["summary"]["inserted"].clone()), (StatusCode::OK, json!(1)), "{body}");
    assert_eq!(count(&app, &admin, "TJG", new_buyers).await, before);
    let member = json!([{"card_no": "ENG-CARD", "name": "新会员", "phone": "13900001111", "gender": "女",
                         "registered_at": format!("{today} 09:00:00"), "store_code": store}]);
    let (status, body, _) = call(&app, "POST", "/api/v1/import/members", None, Some(&token), Some(member)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&app, &admin, "TJG", "all").await, total_before + 1);
    assert_eq!(count(&app, &admin, "TJG", new_buyers).await, before + 1);
    let who = r#"registered(within = 1d) and bought(within = 1d, spend >= 25, times = 1) and gender = "女""#;
    assert_eq!(count(&app, &admin, "TJG", who).await, 1);
    // A second ticket of the now-known member arrives incrementally; a return nets it out again.
    call(&app, "POST", "/api/v1/import/sales", None, Some(&token), Some(sale("ENG-2", "ENG-CARD"))).await;
    assert_eq!(
        count(&app, &admin, "TJG", "registered(within = 1d) and tickets_total = 2 and spend_total = 50").await,
        1
    );
    let ret = json!([{"ticket_no": "ENG-2", "return_no": "R-ENG-2", "returned_at": format!("{today} 10:00:00"),
                      "product_code": product, "quantity": "1", "amount": "25.00"}]);
    let (status, body, _) = call(&app, "POST", "/api/v1/import/returns", None, Some(&token), Some(ret)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        count(&app, &admin, "TJG", "registered(within = 1d) and tickets_total = 1 and spend_total = 25").await,
        1
    );
    // A rebuild from scratch agrees with the incremental state.
    let (status, _, _) = call(&app, "POST", "/api/v1/engine/rebuild", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        count(&app, &admin, "TJG", "registered(within = 1d) and tickets_total = 1 and spend_total = 25").await,
        1
    );
    let (_, grades, _) = call(&app, "GET", "/api/v1/engine/grades", Some(&admin), None, None).await;
    let members: u64 = grades["grades"].as_array().unwrap().iter().map(|g| g["members"].as_u64().unwrap()).sum();
    assert_eq!(members, total_before + 1, "{grades}");
    app.db.cleanup().await;
}

/// A request reads the store's input marks and catches up only when one moved since the last
/// catch-up: each kind of input the engine is built from moves them (taxonomy, engine settings,
/// saved tags, loyalty rules, stores, products, members, sales, returns, health checks), and a
/// re-import that changes nothing does not.
#[tokio::test]
async fn requests_catch_up_only_when_an_input_moved() {
    let mut app = app().await;
    let cli = Scope::cli();
    let store = app.db.store.clone();
    let company = store.company_by_code(&cli, "TJG").await.unwrap();
    let token = store.create_api_token(&cli, company.id, "erp").await.unwrap();
    let intelligence = rxmember_server::intelligence::Intelligence::new(store.clone(), None);
    let state = rxmember_server::AppState { store: store.clone(), secure_cookies: false, intelligence };
    app.router = rxmember_server::router(state.clone());
    let admin = login(&app, "tjg-admin").await;
    let all = count(&app, &admin, "TJG", "all").await;
    let h = state.intelligence.company(company.id).await.unwrap();
    let base = h.catch_ups();
    // Whether the next request caught up, and a second request after it does not.
    let caught_up = async |what: &str| {
        let before = h.catch_ups();
        state.intelligence.company(company.id).await.unwrap();
        let ran = h.catch_ups() - before;
        state.intelligence.company(company.id).await.unwrap();
        assert_eq!(h.catch_ups() - before, ran, "{what}: a second request has nothing to read");
        ran == 1
    };
    assert!(!caught_up("nothing written").await);
    assert_eq!(h.catch_ups(), base);

    let settings = store.engine_settings(&cli, company.id).await.unwrap().unwrap_or_else(|| "{}".into());
    store.set_engine_settings(&cli, company.id, &settings).await.unwrap();
    assert!(caught_up("engine settings").await);
    store.save_expression_tag(&cli, company.id, "仅女性", "gender = \"女\"").await.unwrap();
    assert!(caught_up("a saved tag").await);
    assert!(h.engine.read().await.saved_tags.iter().any(|t| t.name == "仅女性"));
    assert!(store.delete_tag(&cli, company.id, "仅女性").await.unwrap());
    assert!(caught_up("a deleted tag").await);
    assert!(!h.engine.read().await.saved_tags.iter().any(|t| t.name == "仅女性"));
    let taxonomy = store.taxonomy(&cli, company.id).await.unwrap();
    store.replace_taxonomy(&cli, company.id, &taxonomy).await.unwrap();
    assert!(caught_up("the taxonomy").await);
    let rules = store.loyalty_rules(&cli, company.id).await.unwrap();
    store.set_loyalty_rules(&cli, company.id, &rules).await.unwrap();
    assert!(caught_up("loyalty rules").await);

    let import = async |kind: &str, rows: serde_json::Value| {
        let uri = format!("/api/v1/import/{kind}");
        let (status, body, _) = call(&app, "POST", &uri, None, Some(&token), Some(rows)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["summary"].clone()
    };
    let (_, stores, _) = call(&app, "GET", "/api/v1/stores", Some(&admin), None, None).await;
    let shop = stores["stores"][0]["code"].as_str().unwrap().to_string();
    let (_, products, _) = call(&app, "GET", "/api/v1/products?q=硝苯地平", Some(&admin), None, None).await;
    let product = &products["products"][0];
    let code = product["code"].as_str().unwrap().to_string();
    let same = json!([{"product_code": code, "name": product["name"], "category": product["category_code"]}]);
    // Without its other fields the product changes once; the same rows again change nothing.
    let first = import("products", same.clone()).await;
    assert_eq!(caught_up("a product's fields left out").await, first["unchanged"] == json!(0), "{first}");
    let again = import("products", same).await;
    assert_eq!(again["unchanged"], json!(1), "{again}");
    assert!(!caught_up("products imported again unchanged").await);
    import(
        "products",
        json!([{"product_code": code, "name": "硝苯地平缓释片(新)", "category": product["category_code"]}]),
    )
    .await;
    assert!(caught_up("a product renamed").await);
    import("stores", json!([{"store_code": "MARK-1", "name": "新店"}])).await;
    assert!(caught_up("a new store").await);

    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    import(
        "members",
        json!([{"card_no": "MARK-CARD", "name": "新会员", "phone": "13900002222",
                               "registered_at": format!("{today} 09:00:00"), "store_code": shop}]),
    )
    .await;
    assert!(caught_up("a new member").await);
    assert_eq!(count(&app, &admin, "TJG", "all").await, all + 1);
    import(
        "members",
        json!([{"card_no": "MARK-CARD", "name": "新会员", "phone": "13900002222", "gender": "女",
                               "registered_at": format!("{today} 09:00:00"), "store_code": shop}]),
    )
    .await;
    assert!(caught_up("a member changed").await);
    assert_eq!(count(&app, &admin, "TJG", "registered(within = 1d) and gender = \"女\"").await, 1);
    import(
        "sales",
        json!([{"ticket_no": "MARK-T1", "sold_at": format!("{today} 09:30:00"), "store_code": shop,
                             "card_no": "MARK-CARD", "product_code": code, "quantity": "2", "amount": "30.00"}]),
    )
    .await;
    assert!(caught_up("a sale").await);
    import(
        "returns",
        json!([{"ticket_no": "MARK-T1", "return_no": "MARK-R1", "returned_at": format!("{today} 10:00:00"),
                               "product_code": code, "quantity": "1", "amount": "15.00"}]),
    )
    .await;
    assert!(caught_up("a return").await);
    assert_eq!(count(&app, &admin, "TJG", "registered(within = 1d) and spend_total = 15").await, 1);
    import(
        "health_checks",
        json!([{"card_no": "MARK-CARD", "store_code": shop, "checked_at": format!("{today} 10:30:00"),
                                     "kind": "血压", "value": "150/95", "unit": "mmHg"}]),
    )
    .await;
    assert!(caught_up("a health check").await);
    assert_eq!(
        count(
            &app,
            &admin,
            "TJG",
            "registered(within = 1d) and checked(kind = \"血压\", abnormal = true, within = 1d)"
        )
        .await,
        1
    );
    app.db.cleanup().await;
}

/// A server catches up on requests: a catch-up that changed the facts writes the snapshot
/// only once the interval has passed since the last one (zero: every time, as the CLI does); at a
/// shutdown what is not yet in a snapshot is written.
#[tokio::test]
async fn snapshots_are_written_at_most_once_per_interval() {
    let mut app = app().await;
    let dir = std::env::temp_dir().join(format!("rxm-snap-interval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cli = Scope::cli();
    let company = app.db.store.company_by_code(&cli, "TJG").await.unwrap();
    let token = app.db.store.create_api_token(&cli, company.id, "erp").await.unwrap();
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let snapshots = || std::fs::read_dir(&dir).map_or(0, |d| d.filter(|e| e.is_ok()).count());
    for (every, written_again) in [(3600, false), (0, true)] {
        let intelligence = rxmember_server::intelligence::Intelligence::with_snapshot_interval(
            app.db.store.clone(),
            Some(dir.clone()),
            std::time::Duration::from_secs(every),
        );
        let state = rxmember_server::AppState { store: app.db.store.clone(), secure_cookies: false, intelligence };
        app.router = rxmember_server::router(state.clone());
        let admin = login(&app, "tjg-admin").await;
        let (_, stores, _) = call(&app, "GET", "/api/v1/stores", Some(&admin), None, None).await;
        let store = stores["stores"][0]["code"].as_str().unwrap().to_string();
        let (_, products, _) = call(&app, "GET", "/api/v1/products?q=硝苯地平", Some(&admin), None, None).await;
        let product = products["products"][0]["code"].as_str().unwrap().to_string();
        let all = count(&app, &admin, "TJG", "all").await;
        assert_eq!(snapshots(), 1, "the first build leaves a snapshot");
        std::fs::remove_dir_all(&dir).unwrap();
        let sale = json!([{"ticket_no": format!("SNAP-{every}"), "sold_at": format!("{today} 09:30:00"),
                           "store_code": store, "product_code": product, "quantity": "1", "amount": "9.00"}]);
        let (status, body, _) = call(&app, "POST", "/api/v1/import/sales", None, Some(&token), Some(sale)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(count(&app, &admin, "TJG", "all").await, all, "the catch-up ran");
        assert_eq!(snapshots() == 1, written_again, "interval {every} s");
        // At a shutdown, facts not yet in a snapshot are written; nothing is written twice.
        let _ = std::fs::remove_dir_all(&dir);
        state.intelligence.flush_snapshots().await.unwrap();
        assert_eq!(snapshots() == 1, !written_again, "flushed at shutdown (interval {every} s)");
        let _ = std::fs::remove_dir_all(&dir);
    }
    app.db.cleanup().await;
}

/// Every example of `docs/audience-language.md` counts on the demo chain (the demo defines the
/// drug group 阿胶 and the saved tag 慢病关怀 they use), and the ones that name a drug group or the
/// saved tag select somebody.
#[tokio::test]
async fn the_documented_examples_run_on_the_demo() {
    let app = app().await;
    let admin = login(&app, "tjg-admin").await;
    let doc = include_str!("../../../docs/audience-language.md");
    let section = doc.split("## 例子 / Examples").nth(1).expect("the examples section");
    let block = section.split("```text").nth(1).unwrap().split("```").next().unwrap();
    let examples: Vec<&str> = block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(examples.len() >= 10, "{examples:?}");
    for e in &examples {
        count(&app, &admin, "TJG", e).await;
    }
    let all = count(&app, &admin, "TJG", "all").await;
    let tagged = count(&app, &admin, "TJG", r#"tag = "慢病关怀""#).await;
    assert!(tagged > 0 && tagged < all, "慢病关怀 tags {tagged} of {all}");
    assert!(count(&app, &admin, "TJG", r#"bought(group = "阿胶")"#).await > 0);
    assert!(count(&app, &admin, "TJG", r#"class = "三高人群""#).await > 0);
    app.db.cleanup().await;
}
