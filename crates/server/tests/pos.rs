//! The POS and loyalty API over HTTP on the tiny demo chain: a POS developer's flow from the OpenAPI
//! document (identify → quote → commit with a coupon and points → retry → return), an operator's
//! rules and coupons, and tenant separation.

mod common;
mod schema;

use axum::http::StatusCode;
use common::{app, call, login};
use rxmember_core::org::Scope;
use schema::check_response;
use serde_json::{Value, json};

const RULES: &str = r#"
[points]
points_per_yuan = 1
[points.redemption.deduction]
points_per_yuan = 100
max_share_percent = 50
[[member_days]]
name = "每月16日会员日"
days_of_month = [16]
discount_percent = 95
points_percent = 200
"#;

#[tokio::test]
async fn a_pos_identifies_quotes_commits_and_returns() {
    let app = app().await;
    let cli = Scope::cli();
    let company = app.db.store.company_by_code(&cli, "TJG").await.unwrap();
    let token = app.db.store.create_api_token(&cli, company.id, "pos").await.unwrap();
    let admin = login(&app, "tjg-admin").await;
    // Every answer of the till's flow below is checked against the OpenAPI document.
    let (_, doc, _) = call(&app, "GET", "/api/openapi.json", None, None, None).await;

    // The operator sets rules (TOML) and a coupon template for every store.
    let (status, body, _) =
        call(&app, "PUT", "/api/v1/loyalty/rules", Some(&admin), None, Some(json!({ "toml": RULES }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rules"]["member_days"][0]["days_of_month"], json!([16]));
    let (status, body, _) =
        call(&app, "PUT", "/api/v1/loyalty/rules", Some(&admin), None, Some(json!({ "toml": "[points]\nrate = 2\n" })))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("rate"), "{body}");
    let template = json!({ "template": {
        "code": "M50J10", "name": "满50减10", "kind": "cash", "face_value": 1000, "min_spend": 5000,
        "validity": { "kind": "days", "days": 30 }, "per_member_limit": 1 } });
    let (status, body, _) = call(&app, "POST", "/api/v1/loyalty/coupons", Some(&admin), None, Some(template)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) =
        call(&app, "POST", "/api/v1/loyalty/coupons/M50J10/enable", Some(&admin), None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A member, a store and a product of the demo.
    let (card, store, product) = demo_card_store_product(&app, &admin).await;
    let code = product["code"].as_str().unwrap().to_string();
    let price = product["retail_price"].as_i64().unwrap();

    let (status, body, _) = call(
        &app,
        "POST",
        "/api/v1/loyalty/coupons/M50J10/issue",
        Some(&admin),
        None,
        Some(json!({ "card_nos": [card], "request_id": "welcome-1" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued"], 1);
    let coupon = body["codes"][0].as_str().unwrap().to_string();

    // The till identifies the member with the company token.
    let (status, m, _) =
        call(&app, "GET", &format!("/api/v1/pos/members?card_no={card}"), None, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    check_response(&doc, "get", "/api/v1/pos/members", 200, &m);
    assert_eq!(m["coupons"][0]["code"], json!(coupon));
    assert!(m["name_masked"].as_str().is_none_or(|n| n.contains('*')));
    let balance = m["points_balance"].as_i64().unwrap();

    // Quote 2 units now: the coupon applies; points to earn on the paid amount.
    let basket = json!({
        "store_code": store, "card_no": card,
        "lines": [{ "product_code": code, "quantity": 2 }],
        "coupon_codes": [display(&coupon)],
    });
    let (status, q, _) = call(&app, "POST", "/api/v1/pos/quote", None, Some(&token), Some(basket.clone())).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    check_response(&doc, "post", "/api/v1/pos/quote", 200, &q);
    // The check has teeth: a missing, a mistyped and an undocumented field are each found.
    let mut wrong = q.clone();
    wrong["quote"].as_object_mut().unwrap().remove("total");
    wrong["quote"]["points_to_earn"] = json!("57");
    wrong["quote"]["lines"][0]["bogus"] = json!(1);
    let found = schema::response_errors(&doc, "post", "/api/v1/pos/quote", 200, &wrong);
    for needle in ["$.quote.total: required", "$.quote.points_to_earn: \"57\"", "$.quote.lines[0].bogus"] {
        assert!(found.iter().any(|e| e.starts_with(needle)), "{needle} not in {found:#?}");
    }
    let quote = &q["quote"];
    assert_eq!(quote["list_total"], json!(2 * price));
    assert_eq!(quote["coupon_discount"], json!(1000));
    assert_eq!(quote["suggested_coupons"], json!([coupon]));
    let total = quote["total"].as_i64().unwrap();
    assert_eq!(total, 2 * price - quote["member_discount"].as_i64().unwrap() - 1000);
    let to_earn = quote["points_to_earn"].as_i64().unwrap();
    assert!(to_earn > 0);

    // Commit; retry; conflicting body under the same ticket number.
    let mut sale = basket.clone();
    sale["ticket_no"] = json!("POS-T-1");
    let (status, r, _) = call(&app, "POST", "/api/v1/pos/sales", None, Some(&token), Some(sale.clone())).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    check_response(&doc, "post", "/api/v1/pos/sales", 200, &r);
    assert_eq!(r["receipt"]["total"], json!(total));
    assert_eq!(r["receipt"]["points_earned"], json!(to_earn));
    assert_eq!(r["receipt"]["points_balance"], json!(balance + to_earn));
    let (status, again, _) = call(&app, "POST", "/api/v1/pos/sales", None, Some(&token), Some(sale.clone())).await;
    assert_eq!((status, &again["receipt"]), (StatusCode::OK, &r["receipt"]));
    let mut other = sale.clone();
    other["lines"][0]["quantity"] = json!(3);
    let (status, body, _) = call(&app, "POST", "/api/v1/pos/sales", None, Some(&token), Some(other)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    check_response(&doc, "post", "/api/v1/pos/sales", 409, &body);
    // The coupon is used: quoting with it now fails with a reason.
    let (status, body, _) = call(&app, "POST", "/api/v1/pos/quote", None, Some(&token), Some(basket)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    check_response(&doc, "post", "/api/v1/pos/quote", 400, &body);

    // Return one unit: half the points come back out.
    let ret =
        json!({ "return_no": "RET-T-1", "ticket_no": "POS-T-1", "lines": [{ "product_code": code, "quantity": 1 }] });
    let (status, rr, _) = call(&app, "POST", "/api/v1/pos/returns", None, Some(&token), Some(ret)).await;
    assert_eq!(status, StatusCode::OK, "{rr}");
    check_response(&doc, "post", "/api/v1/pos/returns", 200, &rr);
    assert_eq!(rr["points_taken_back"], json!(to_earn / 2));

    // The operator sees the ledger and the coupon statistics.
    let mid = m["member_id"].as_i64().unwrap();
    let (status, lm, _) =
        call(&app, "GET", &format!("/api/v1/loyalty/members/{}/{mid}", company.id.0), Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK, "{lm}");
    assert_eq!(lm["points"]["balance"], json!(balance + to_earn - to_earn / 2));
    let (_, t, _) = call(&app, "GET", "/api/v1/loyalty/coupons", Some(&admin), None, None).await;
    assert_eq!((t["templates"][0]["issued"].clone(), t["templates"][0]["used"].clone()), (json!(1), json!(1)));

    // On the next 16th (member day) the price is 9.5折 and points double.
    let mut d = chrono::Utc::now().date_naive();
    while chrono::Datelike::day(&d) != 16 {
        d = d.succ_opt().unwrap();
    }
    let day = json!({ "store_code": store, "card_no": card, "sold_at": format!("{d}T10:00:00"),
        "lines": [{ "product_code": code, "quantity": 1 }] });
    let (_, q, _) = call(&app, "POST", "/api/v1/pos/quote", None, Some(&token), Some(day)).await;
    assert_eq!(q["quote"]["member_day"], json!("每月16日会员日"), "{q}");
    let list = q["quote"]["list_total"].as_i64().unwrap();
    let level = q["quote"]["tier"].as_str().unwrap_or("normal");
    if level == "normal" {
        assert_eq!(q["quote"]["total"].as_i64().unwrap(), (list * 95 + 50) / 100);
    }
    assert!(q["quote"]["lines"][0]["points_percent"].as_u64().unwrap() >= 200);
    app.db.cleanup().await;
}

/// The first member's card, the first store's code, and a product that earns points and costs at
/// least 30 yuan, as the operator's API lists them.
async fn demo_card_store_product(app: &common::App, admin: &str) -> (String, String, Value) {
    let (_, page, _) = call(app, "GET", "/api/v1/members?per_page=1", Some(admin), None, None).await;
    let card = page["members"][0]["card_no"].as_str().unwrap().to_string();
    let (_, stores, _) = call(app, "GET", "/api/v1/stores", Some(admin), None, None).await;
    let store = stores["stores"][0]["code"].as_str().unwrap().to_string();
    let (_, products, _) = call(app, "GET", "/api/v1/products?per_page=50", Some(admin), None, None).await;
    let product = products["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["retail_price"].as_i64().is_some_and(|v| v >= 3000) && p["points_excluded"] == json!(false))
        .unwrap()
        .clone();
    (card, store, product)
}

fn display(code: &str) -> String {
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).to_lowercase()).collect::<Vec<_>>().join("-")
}

#[tokio::test]
async fn roles_and_tenants_are_enforced_on_loyalty() {
    let app = app().await;
    let cli = Scope::cli();
    let other = app.db.store.companies(&cli).await.unwrap().into_iter().find(|c| c.code != "TJG").unwrap();
    let other_token = app.db.store.create_api_token(&cli, other.id, "pos").await.unwrap();
    let clerk = login(&app, "tjg-clerk").await;
    let (status, _, _) =
        call(&app, "PUT", "/api/v1/loyalty/rules", Some(&clerk), None, Some(json!({ "toml": RULES }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        call(&app, "GET", "/api/v1/pos/members?company=TJG&card_no=x", None, Some(&other_token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&app, "POST", "/api/v1/loyalty/jobs/expire-points", Some(&clerk), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.db.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_pos_flow() {
    let app = app().await;
    let (_, doc, _) = call(&app, "GET", "/api/openapi.json", None, None, None).await;
    for path in ["/api/v1/pos/members", "/api/v1/pos/quote", "/api/v1/pos/sales", "/api/v1/pos/returns"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let basket: &Value = &doc["components"]["schemas"]["BasketBody"];
    for field in ["store_code", "card_no", "lines", "coupon_codes", "use_points", "ticket_no"] {
        assert!(basket["properties"][field].is_object(), "BasketBody.{field} missing");
    }
    app.db.cleanup().await;
}

/// What the till writes (points, their expiry, the tier) is what audiences select on, at the next
/// count: `points_balance`, `points_expiring(...)`, `tier`, and the loyalty columns of a list.
#[tokio::test]
async fn points_and_tiers_from_the_till_reach_audiences() {
    let app = app().await;
    let cli = Scope::cli();
    let company = app.db.store.company_by_code(&cli, "TJG").await.unwrap();
    let token = app.db.store.create_api_token(&cli, company.id, "pos").await.unwrap();
    let admin = login(&app, "tjg-admin").await;
    // Points valid one month (rolling); the default tiers (普通/银卡/金卡/钻石).
    let rules = "[points]\npoints_per_yuan = 1\n[points.expiry]\nrolling_months = 1\n";
    let (status, body, _) =
        call(&app, "PUT", "/api/v1/loyalty/rules", Some(&admin), None, Some(json!({ "toml": rules }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let list = |expr: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, body, _) = call(
                app,
                "POST",
                "/api/v1/audiences/members",
                Some(&admin),
                None,
                Some(json!({ "company": "TJG", "expression": expr, "limit": 500,
                    "columns": ["card_no", "tier", "points_balance", "points_expiring_30d"] })),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{expr}: {body}");
            body
        }
    };
    let row_of = |body: &Value, card: &str| -> Option<Vec<String>> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == card)
            .map(|r| r.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect())
    };

    // A member and a product of the demo; the member's points before the sale.
    let (card, store, product) = demo_card_store_product(&app, &admin).await;
    let (_, m, _) = call(&app, "GET", &format!("/api/v1/pos/members?card_no={card}"), None, Some(&token), None).await;
    let before = m["points_balance"].as_i64().unwrap();
    let everyone = list("all".into()).await;
    let row = row_of(&everyone, &card).expect("the member is listed");
    assert_eq!(row[2], before.to_string(), "{row:?}");
    let expiring_before = count_of(&app, &admin, "points_expiring(within = 40d)").await;
    // (On some dates the demo's own points expire within 40 days.)
    let was_expiring = row_of(&list("points_expiring(within = 40d)".into()).await, &card).is_some() as u64;

    // A sale of 2000 yuan at the till: points now, valid one month, and an immediate upgrade.
    let sale = json!({ "ticket_no": "POS-AUD-1", "store_code": store, "card_no": card,
        "lines": [{ "product_code": product["code"], "quantity": 200_000 / product["retail_price"].as_i64().unwrap() + 1 }] });
    let (status, r, _) = call(&app, "POST", "/api/v1/pos/sales", None, Some(&token), Some(sale)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let earned = r["receipt"]["points_earned"].as_i64().unwrap();
    let balance = r["receipt"]["points_balance"].as_i64().unwrap();
    assert!(earned >= 1_000 && balance == before + earned, "{r}");
    let tier = r["receipt"]["tier"].as_str().unwrap().to_string();
    assert_ne!(tier, "normal", "2000 yuan in a year upgrades at once: {r}");
    let tier_name = match tier.as_str() {
        "silver" => "银卡",
        "gold" => "金卡",
        "diamond" => "钻石",
        other => panic!("tier {other}"),
    };

    let hit = list(format!(
        "points_balance = {balance} and points_expiring(within = 40d, points >= {earned}) and tier = \"{tier_name}\""
    ))
    .await;
    let row = row_of(&hit, &card).expect("the member now matches");
    assert_eq!(row[1], tier_name);
    assert_eq!(row[2], balance.to_string());
    assert_eq!(count_of(&app, &admin, "points_expiring(within = 40d)").await, expiring_before + 1 - was_expiring);
    // Not yet expiring within a day; a later window does not pass on points that expire sooner.
    let soon = list(format!("points_expiring(within = 1d, points >= {earned})")).await;
    assert!(row_of(&soon, &card).is_none());
    let not_gold = list(format!("tier != \"{tier_name}\"")).await;
    assert!(row_of(&not_gold, &card).is_none());
    // The tier catalogue counts every member once.
    let (_, tags, _) = call(&app, "GET", "/api/v1/tags", Some(&admin), None, None).await;
    let dim = tags["dimensions"].as_array().unwrap().iter().find(|d| d["key"] == "tier").unwrap().clone();
    let sum: u64 = dim["values"].as_array().unwrap().iter().map(|v| v["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, count_of(&app, &admin, "all").await);
    assert_eq!(dim["values"][0]["name"], "普通");

    // A return of the whole ticket takes the points back: the audience follows.
    let ret = json!({ "return_no": "RET-AUD-1", "ticket_no": "POS-AUD-1",
        "lines": [{ "product_code": product["code"], "quantity": 200_000 / product["retail_price"].as_i64().unwrap() + 1 }] });
    let (status, rr, _) = call(&app, "POST", "/api/v1/pos/returns", None, Some(&token), Some(ret)).await;
    assert_eq!(status, StatusCode::OK, "{rr}");
    let after = list("all".into()).await;
    assert_eq!(row_of(&after, &card).unwrap()[2], before.to_string());
    assert_eq!(count_of(&app, &admin, "points_expiring(within = 40d)").await, expiring_before);
    app.db.cleanup().await;
}

async fn count_of(app: &common::App, cookie: &str, expr: &str) -> u64 {
    let (status, body, _) = call(
        app,
        "POST",
        "/api/v1/audiences/count",
        Some(cookie),
        None,
        Some(json!({ "company": "TJG", "expression": expr })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{expr}: {body}");
    body["count"].as_u64().unwrap()
}
