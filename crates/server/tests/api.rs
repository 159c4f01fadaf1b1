//! HTTP tests: the real router in-process on a real database (SQLite, or PostgreSQL with
//! RXMEMBER_TEST_PG): login and sessions, scoped and masked member data, cross-tenant refusal, the
//! ERP push import with an API token, the OpenAPI document.

mod common;

use axum::http::StatusCode;
use common::{app, call, login};
use rxmember_core::org::Scope;
use serde_json::json;

#[tokio::test]
async fn login_sessions_and_errors() {
    let app = app().await;
    let (status, body, _) = call(&app, "GET", "/api/v1/members", None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _, _) =
        call(&app, "POST", "/api/v1/login", None, None, Some(json!({"username": "admin", "password": "wrong"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let cookie = login(&app, "admin").await;
    let (status, me, _) = call(&app, "GET", "/api/v1/me", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "group_admin");
    let (status, _, cleared) = call(&app, "POST", "/api/v1/logout", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(cleared.unwrap().contains("Max-Age=0"));
    let (status, _, _) = call(&app, "GET", "/api/v1/me", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, health, _) = call(&app, "GET", "/health", None, None, None).await;
    assert_eq!((status, health["database"].clone()), (StatusCode::OK, json!(true)));
    app.db.cleanup().await;
}

#[tokio::test]
async fn members_are_scoped_and_masked_by_role() {
    let app = app().await;
    let admin = login(&app, "tjg-admin").await;
    let (status, page, _) = call(&app, "GET", "/api/v1/members?per_page=5", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let total_company = page["total"].as_i64().unwrap();
    assert!(total_company > 0);
    let phone = page["members"].as_array().unwrap().iter().find_map(|m| m["phone"].as_str()).unwrap().to_string();
    assert!(!phone.contains('*'), "company admin sees phones: {phone}");
    // The company admin cannot read another company.
    let (status, body, _) = call(&app, "GET", "/api/v1/members?company=SCTJ", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let manager = login(&app, "tjg-manager").await;
    let (_, page, _) = call(&app, "GET", "/api/v1/members?per_page=50", Some(&manager), None, None).await;
    let store_total = page["total"].as_i64().unwrap();
    assert!(store_total > 0 && store_total < total_company, "{store_total} of {total_company}");
    for m in page["members"].as_array().unwrap() {
        if let Some(p) = m["phone"].as_str() {
            assert!(p.contains("****"), "store managers see masked phones: {p}");
        }
    }
    // Detail of a member of another store: not found for this manager, found for the company admin.
    let (_, mine, _) = call(&app, "GET", "/api/v1/members?per_page=500", Some(&manager), None, None).await;
    let (_, all, _) = call(&app, "GET", "/api/v1/members?per_page=500", Some(&admin), None, None).await;
    assert_eq!(mine["members"].as_array().unwrap().len() as i64, store_total);
    assert_eq!(all["members"].as_array().unwrap().len() as i64, total_company);
    let visible: Vec<i64> = mine["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let other = all["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| !visible.contains(&m["id"].as_i64().unwrap()))
        .expect("the company has members outside the manager's store")
        .clone();
    let uri = format!("/api/v1/members/{}/{}", other["company_id"], other["id"]);
    let (status, _, _) = call(&app, "GET", &uri, Some(&manager), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, detail, _) = call(&app, "GET", &uri, Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["card_no"], other["card_no"]);
    // Every unmasked reveal was audited.
    let entries = app.db.store.audit_entries(&Scope::cli(), 50).await.unwrap();
    assert!(entries.iter().any(|e| e.action == "member.list" && e.actor == "staff:tjg-admin"));
    app.db.cleanup().await;
}

#[tokio::test]
async fn erp_pushes_rows_with_an_api_token() {
    let app = app().await;
    let cli = Scope::cli();
    let company = app.db.store.company_by_code(&cli, "TJG").await.unwrap();
    let token = app.db.store.create_api_token(&cli, company.id, "erp").await.unwrap();
    let rows = json!([
        {"会员卡号": "API001", "姓名": "钱多多", "手机号": "13912340001", "性别": "女"},
        {"会员卡号": "API002", "手机号": "12345"},
        {"姓名": "没有卡号"}
    ]);
    let (status, body, _) = call(&app, "POST", "/api/v1/import/members", None, Some(&token), Some(rows.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"]["inserted"], 2);
    assert_eq!(body["summary"]["rejected"], 1);
    assert_eq!(body["summary"]["warnings"], 1);
    assert_eq!(body["issues"][0]["code"], "invalid_phone");
    let (_, again, _) = call(&app, "POST", "/api/v1/import/members", None, Some(&token), Some(rows)).await;
    assert_eq!(again["summary"]["unchanged"], 2);
    // A token is bound to its company; bad tokens and bad bodies are refused clearly.
    let (status, _, _) =
        call(&app, "POST", "/api/v1/import/members?company=SCTJ", None, Some(&token), Some(json!([]))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        call(&app, "POST", "/api/v1/import/members", None, Some("rxm_1_forged"), Some(json!([]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, _) =
        call(&app, "POST", "/api/v1/import/members", None, Some(&token), Some(json!({"not": "an array"}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("bad_request")));
    let (status, body, _) =
        call(&app, "POST", "/api/v1/import/sales", None, Some(&token), Some(json!([{"ticket_no": "X"}]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // A store manager may read but not import.
    let manager = login(&app, "tjg-manager").await;
    let (status, _, _) = call(&app, "POST", "/api/v1/import/members", Some(&manager), None, Some(json!([]))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Revoked (through this server's store), the token stops at once although checked tokens are
    // trusted for a few seconds.
    app.db.store.revoke_api_token(&cli, company.id, "erp").await.unwrap();
    let (status, _, _) = call(&app, "POST", "/api/v1/import/members", None, Some(&token), Some(json!([]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.db.cleanup().await;
}

#[tokio::test]
async fn openapi_and_console_are_served() {
    let app = app().await;
    let (status, doc, _) = call(&app, "GET", "/api/openapi.json", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/login", "/api/v1/members", "/api/v1/import/{kind}", "/health"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    let (status, page, _) = call(&app, "GET", "/", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("会员营销服务平台"));
    let admin = login(&app, "admin").await;
    let (_, products, _) = call(&app, "GET", "/api/v1/products?company=TJG&q=硝苯地平", Some(&admin), None, None).await;
    assert!(products["total"].as_i64().unwrap() >= 1, "{products}");
    let (_, tickets, _) = call(&app, "GET", "/api/v1/tickets?company=TJG&per_page=3", Some(&admin), None, None).await;
    let t = &tickets["tickets"][0];
    let (status, one, _) =
        call(&app, "GET", &format!("/api/v1/tickets/{}/{}", t["company_id"], t["id"]), Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["ticket_no"], t["ticket_no"]);
    app.db.cleanup().await;
}

/// The console page carries the audience builder (人群圈选): its nav entry and view, calls only to routes
/// that exist, and reads fields the API really answers with.
#[tokio::test]
async fn console_has_the_audience_builder() {
    let app = app().await;
    let (status, page, _) = call(&app, "GET", "/", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains(r##"<a href="#audiences" data-t="audiences">人群圈选</a>"##), "nav entry");
    assert!(page.contains(r#"view === "audiences""#) && page.contains("async function renderAudiences"), "view");
    assert!(page.contains(r#"audiences: ["人群圈选", "Audiences"]"#), "English label");

    // Every API path in the page is a route of the API (paths ending in `/` take a parameter).
    let (_, doc, _) = call(&app, "GET", "/api/openapi.json", None, None, None).await;
    let routes: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let called: std::collections::BTreeSet<&str> = page
        .match_indices("/api/v1/")
        .map(|(i, _)| {
            let rest = &page[i..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    for path in &called {
        let known = if path.ends_with('/') {
            routes.iter().any(|r| r.starts_with(path) && r[path.len()..].starts_with('{'))
        } else {
            routes.contains(path)
        };
        assert!(known, "the page calls {path}, which is not a route");
    }
    for path in [
        "/api/v1/tags",
        "/api/v1/tags/",
        "/api/v1/audiences/count",
        "/api/v1/audiences/members",
        "/api/v1/audiences/export",
        "/api/v1/engine/grades",
    ] {
        assert!(called.contains(path), "the builder no longer calls {path}");
    }

    // The answers have the fields the page reads.
    let admin = login(&app, "tjg-admin").await;
    let (_, tags, _) = call(&app, "GET", "/api/v1/tags?company=TJG", Some(&admin), None, None).await;
    let dims = tags["dimensions"].as_array().unwrap();
    for p in ["consumption", "product", "health", "member"] {
        assert!(dims.iter().any(|d| d["primary"] == p), "{p}");
        assert!(page.contains(&format!("\"{p}\"")), "{p}");
    }
    let grade = dims.iter().find(|d| d["key"] == "grade").unwrap();
    assert!(grade["name"].is_string() && grade["primary_name"].is_string() && grade["values"][0]["count"].is_u64());
    assert!(dims.iter().any(|d| d["key"] == "saved") && page.contains(r#"key === "saved""#));
    let tag = format!("{}/{}", grade["name"].as_str().unwrap(), grade["values"][0]["name"].as_str().unwrap());
    let audience = json!({"company": "TJG", "expression": format!("tag in (\"{tag}\") and not tag = \"性别/男\"")});
    let (status, n, _) =
        call(&app, "POST", "/api/v1/audiences/count", Some(&admin), None, Some(audience.clone())).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert!(n["count"].is_u64() && n["scope_total"].is_u64() && n["as_of"].is_string() && n["millis"].is_number());
    for key in ["by_store", "by_grade", "by_gender", "by_age_band"] {
        assert!(n["breakdowns"][key][0]["name"].is_string(), "{key}: {n}");
        assert!(page.contains(&format!("b.{key}")), "{key}");
    }
    let (_, rows, _) = call(&app, "POST", "/api/v1/audiences/members", Some(&admin), None, Some(audience)).await;
    assert!(
        rows["total"].is_u64() && rows["columns"].is_array() && rows["headers"].is_array() && rows["rows"].is_array()
    );
    let bad = json!({"company": "TJG", "expression": "agee > 3"});
    let (status, err, _) = call(&app, "POST", "/api/v1/audiences/count", Some(&admin), None, Some(bad)).await;
    assert_eq!((status, err["error"]["offset"].clone()), (StatusCode::BAD_REQUEST, json!(0)));
    assert!(err["error"]["message_en"].is_string() && page.contains("body.offset") && page.contains("message_en"));
    let (_, grades, _) = call(&app, "GET", "/api/v1/engine/grades?company=TJG", Some(&admin), None, None).await;
    let g = &grades["grades"][0];
    for key in ["grade", "members", "member_share", "sales_fen", "sales_share"] {
        assert!(!g[key].is_null() && page.contains(&format!("g.{key}")), "{key}: {grades}");
    }
    for key in ["r_days", "f_tickets", "m_fen"] {
        assert!(grades["thresholds"][key].is_i64() && page.contains(&format!("th.{key}")), "{key}");
    }
    app.db.cleanup().await;
}

/// The console's 会员权益 (loyalty) pages: every call they make is one row of a table of [method, path]
/// in the page, each row is an operation of the OpenAPI document, and no loyalty path is called from
/// outside the table; the answers have the fields the pages read; the writes the pages make, with the
/// bodies they build, work for a company admin and are refused with a Chinese message for a clerk.
#[tokio::test]
async fn console_has_the_loyalty_pages() {
    let app = app().await;
    let (status, page, _) = call(&app, "GET", "/", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains(r##"<a href="#loyalty" data-t="loyalty">会员权益</a>"##), "nav entry");
    assert!(page.contains(r#"view.startsWith("loyalty/")"#) && page.contains("async function renderLoyalty"), "view");
    assert!(page.contains(r#"loyalty: ["会员权益", "Loyalty"]"#), "English label");

    // The table of calls, and each (method, path) in the OpenAPI document.
    let start = page.find("const L_API = {").expect("the loyalty pages keep their calls in L_API");
    let table = &page[start..start + page[start..].find("};").unwrap()];
    let rows: Vec<(&str, &str, &str)> = table
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(": [\"")?;
            let (method, rest) = rest.split_once("\", \"")?;
            Some((name, method, rest.split_once('"')?.0))
        })
        .collect();
    let (_, doc, _) = call(&app, "GET", "/api/openapi.json", None, None, None).await;
    for (name, method, path) in &rows {
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "L_API.{name}: the page calls {method} {path}, which is not an operation of the API"
        );
    }
    let pairs: Vec<(&str, &str)> = rows.iter().map(|r| (r.1, r.2)).collect();
    for pair in [
        ("GET", "/api/v1/loyalty/rules"),
        ("PUT", "/api/v1/loyalty/rules"),
        ("GET", "/api/v1/loyalty/coupons"),
        ("POST", "/api/v1/loyalty/coupons"),
        ("PUT", "/api/v1/loyalty/coupons/{code}"),
        ("DELETE", "/api/v1/loyalty/coupons/{code}"),
        ("POST", "/api/v1/loyalty/coupons/{code}/enable"),
        ("POST", "/api/v1/loyalty/coupons/{code}/disable"),
        ("POST", "/api/v1/loyalty/coupons/{code}/issue"),
        ("GET", "/api/v1/loyalty/members/{company_id}/{member_id}"),
        ("GET", "/api/v1/loyalty/members/{company_id}/{member_id}/ledger"),
        ("POST", "/api/v1/loyalty/members/{company_id}/{member_id}/adjust"),
        ("POST", "/api/v1/loyalty/members/{company_id}/{member_id}/exchange"),
        ("POST", "/api/v1/loyalty/jobs/{job}"),
        ("GET", "/api/v1/stores"),
        ("GET", "/api/v1/members"),
        ("POST", "/api/v1/audiences/count"),
    ] {
        assert!(pairs.contains(&pair), "the loyalty pages no longer call {pair:?}");
    }
    // Nothing after the table reaches the API except through it, and every lCall names a row.
    let section = &page[start..];
    for (i, _) in section.match_indices("/api/v1/") {
        assert!(i < table.len(), "an API path outside L_API: {}", &section[i..i + 60]);
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let mut used = 0;
    for (i, _) in page.match_indices("lCall(\"") {
        let name = &page[i + 7..];
        let name = &name[..name.find('"').unwrap()];
        assert!(names.contains(&name), "lCall(\"{name}\") is not in L_API");
        used += 1;
    }
    assert!(used >= rows.len(), "every row is used");

    let admin = login(&app, "tjg-admin").await;
    let get = |uri: String, who: String| {
        let app = &app;
        async move {
            let (status, body, _) = call(app, "GET", &uri, Some(&who), None, None).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            body
        }
    };
    let post = |method: &'static str, uri: String, body: serde_json::Value| {
        let (app, admin) = (&app, admin.clone());
        async move { call(app, method, &uri, Some(&admin), None, Some(body)).await }
    };

    // 积分与等级规则: the fields the readable view reads; the editor's round trip and its error.
    let rules = get("/api/v1/loyalty/rules?company=TJG".into(), admin.clone()).await;
    let r = &rules["rules"];
    for key in
        ["points_per_yuan", "rounding", "excluded_categories", "excluded_products", "multipliers", "return_policy"]
    {
        assert!(!r["points"][key].is_null() && page.contains(&format!("p.{key}")), "points.{key}");
    }
    for key in ["year_end", "same_year", "rolling_months"] {
        assert!(r["points"]["expiry"].get(key).is_some() && page.contains(&format!("p.expiry.{key}")), "expiry.{key}");
    }
    assert!(page.contains("p.redemption.deduction") && page.contains("p.redemption.coupon_tiers"));
    assert!(r["points"]["redemption"]["coupon_tiers"][0]["template"].is_string() && page.contains("x.template"));
    let level = &r["tiers"]["levels"][1];
    for key in ["code", "name", "entry", "retain", "benefits"] {
        assert!(!level[key].is_null() && page.contains(&format!("l.{key}")), "level.{key}");
    }
    for key in ["discount_percent", "points_percent", "member_day_extra_percent", "birthday_coupon"] {
        assert!(level["benefits"].get(key).is_some() && page.contains(&format!("b.{key}")), "benefits.{key}");
    }
    assert_eq!(level["entry"][0]["kind"], "annual_spend");
    assert!(
        page.contains("cond_annual_spend")
            && page.contains("cond_monthly_average")
            && page.contains("cond_annual_points")
    );
    let day = &r["member_days"][0];
    for key in
        ["name", "days_of_month", "weekdays", "lunar_days", "discount_percent", "points_percent", "excluded_categories"]
    {
        assert!(!day[key].is_null() && page.contains(&format!("d.{key}")), "member_days.{key}");
    }
    let toml = rules["toml"].as_str().unwrap().to_string();
    let (status, saved, _) = post("PUT", "/api/v1/loyalty/rules".into(), json!({"company": "TJG", "toml": toml})).await;
    assert_eq!((status, saved["toml"].as_str()), (StatusCode::OK, Some(toml.as_str())), "{saved}");
    let (status, bad, _) =
        post("PUT", "/api/v1/loyalty/rules".into(), json!({"company": "TJG", "toml": "[points]\nrate = 2\n"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message"].as_str().unwrap().contains("line 2"), "the editor jumps to the line: {bad}");

    // 优惠券: the statistics columns; a template as the form builds it (yuan entered, fen sent),
    // enabled for one store, issued to cards (twice: the same request id issues nothing twice) and to
    // an audience, disabled.
    let list = get("/api/v1/loyalty/coupons?company=TJG".into(), admin.clone()).await;
    let c = list["templates"][0].as_object().unwrap();
    let columns = "name code kind status status_label min_spend face_value percent gift_product all_stores stores validity \
                   issued used shared share_succeeded share_failed total_quantity discount_total per_member_limit issue_event";
    for key in columns.split_whitespace() {
        assert!(c.contains_key(key) && page.contains(&format!("c.{key}")), "template.{key}");
    }
    let stores = get("/api/v1/stores?company=TJG".into(), admin.clone()).await;
    let store = stores["stores"][0]["code"].as_str().unwrap().to_string();
    assert!(stores["stores"][0]["name"].is_string() && page.contains("s.code") && page.contains("s.name"));
    let template = json!({"company": "TJG", "template": {
        "code": "ZK88", "name": "慢病关怀 88折券", "kind": "percentage", "face_value": 0, "percent": 88, "gift_product": null,
        "min_spend": 5990, "validity": {"kind": "days", "days": 30}, "categories": [], "products": [], "stackable": false,
        "per_member_limit": 1, "total_quantity": 100, "issue_event": null}});
    let (status, body, _) = post("POST", "/api/v1/loyalty/coupons".into(), template.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A draft's terms can be rewritten (not its code); the form fills itself from the template.
    let mut edited = template.clone();
    edited["template"]["min_spend"] = json!(6990);
    edited["template"]["name"] = json!("慢病关怀 88折券（满69.9）");
    let (status, body, _) = post("PUT", "/api/v1/loyalty/coupons/ZK88".into(), edited.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let one = get("/api/v1/loyalty/coupons/ZK88?company=TJG".into(), admin.clone()).await;
    assert_eq!(
        (&one["min_spend"], &one["name"], &one["status"]),
        (&json!(6990), &edited["template"]["name"], &json!("draft"))
    );
    for key in ["validity", "categories", "products", "stackable", "gift_product", "issue_event"] {
        assert!(page.contains(&format!("c.{key}")), "the edit form reads {key}");
    }
    let mut renamed = edited.clone();
    renamed["template"]["code"] = json!("ZK89");
    let (status, _, _) = post("PUT", "/api/v1/loyalty/coupons/ZK88".into(), renamed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A draft can be deleted; a deleted or unknown template is 404.
    let mut other = template.clone();
    other["template"]["code"] = json!("ZK99");
    let (status, body, _) = post("POST", "/api/v1/loyalty/coupons".into(), other).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) =
        call(&app, "DELETE", "/api/v1/loyalty/coupons/ZK99?company=TJG", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&app, "GET", "/api/v1/loyalty/coupons/ZK99?company=TJG", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = post(
        "POST",
        "/api/v1/loyalty/coupons/ZK88/enable?company=TJG".into(),
        json!({"company": "TJG", "stores": [store]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let list = get("/api/v1/loyalty/coupons?company=TJG".into(), admin.clone()).await;
    let zk = list["templates"].as_array().unwrap().iter().find(|t| t["code"] == "ZK88").unwrap().clone();
    assert_eq!((&zk["status"], &zk["all_stores"], &zk["stores"]), (&json!("enabled"), &json!(false), &json!([store])));
    assert_eq!((&zk["min_spend"], &zk["percent"], &zk["total_quantity"]), (&json!(6990), &json!(88), &json!(100)));
    // Enabled, its terms are fixed and it cannot be deleted: coupons are redeemed under them.
    let (status, body, _) = post("PUT", "/api/v1/loyalty/coupons/ZK88".into(), edited).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _, _) =
        call(&app, "DELETE", "/api/v1/loyalty/coupons/ZK88?company=TJG", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let found = get("/api/v1/members?company=TJG&q=100000001&per_page=20&page=1".into(), admin.clone()).await;
    let m = found["members"][0].clone();
    for key in ["company_id", "id", "card_no", "name", "phone", "birthday"] {
        assert!(!m[key].is_null() && page.contains(&format!("m.{key}")), "member.{key}");
    }
    assert!(found["total"].is_u64() && page.contains("d.total"));
    let issue = json!({"company": "TJG", "card_nos": ["100000001", "100000002"], "request_id": "web-test-1"});
    let (status, rep, _) = post("POST", "/api/v1/loyalty/coupons/ZK88/issue?company=TJG".into(), issue.clone()).await;
    assert_eq!(status, StatusCode::OK, "{rep}");
    for key in ["issued", "unchanged", "over_limit", "exhausted", "codes"] {
        assert!(!rep[key].is_null() && page.contains(&format!("r.{key}")), "report.{key}");
    }
    assert_eq!(rep["issued"], 2);
    let (_, again, _) = post("POST", "/api/v1/loyalty/coupons/ZK88/issue?company=TJG".into(), issue).await;
    assert_eq!((&again["issued"], &again["unchanged"]), (&json!(0), &json!(2)));
    let count = json!({"company": "TJG", "expression": "age between 50 and 70"});
    let (status, n, _) = post("POST", "/api/v1/audiences/count?company=TJG".into(), count).await;
    assert!(status == StatusCode::OK && n["count"].is_u64() && page.contains("n.count"), "{n}");
    let to_audience = json!({"company": "TJG", "expression": "age between 50 and 70", "request_id": "web-test-2"});
    let (status, rep, _) = post("POST", "/api/v1/loyalty/coupons/ZK88/issue?company=TJG".into(), to_audience).await;
    assert_eq!(status, StatusCode::OK, "{rep}");
    assert_eq!(rep["issued"].as_u64().unwrap() + rep["over_limit"].as_u64().unwrap(), n["count"].as_u64().unwrap());
    let (status, _, _) =
        call(&app, "POST", "/api/v1/loyalty/coupons/ZK88/disable?company=TJG", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // 任务: every job the page offers runs, and answers with the fields its sentence names.
    let jobs_at = page.find("const L_JOBS = [").unwrap();
    let jobs_line = &page[jobs_at..jobs_at + page[jobs_at..].find('\n').unwrap()];
    let jobs: Vec<(&str, &str)> = jobs_line
        .split("[\"")
        .skip(1)
        .map(|s| {
            let (job, rest) = s.split_once("\", \"").unwrap();
            (job, rest.split_once('"').unwrap().0)
        })
        .collect();
    assert_eq!(
        jobs.iter().map(|j| j.0).collect::<Vec<_>>(),
        ["accrue-points", "expire-points", "event-coupons", "review-tiers"]
    );
    for (job, key) in jobs {
        let (status, out, _) =
            call(&app, "POST", &format!("/api/v1/loyalty/jobs/{job}?company=TJG"), Some(&admin), None, None).await;
        assert_eq!(status, StatusCode::OK, "{job}: {out}");
        let at = page.find(&format!("jr_{key}: [\"")).unwrap_or_else(|| panic!("jr_{key}"));
        let sentence = &page[at..at + page[at..].find(']').unwrap()];
        for field in sentence.split('{').skip(1).map(|s| s.split_once('}').unwrap().0) {
            assert!(out[field].is_u64(), "{job}: {field} in {out}");
        }
    }

    // 会员积分: the member's answer, an adjustment (and its retry), an exchange.
    let uri = format!("/api/v1/loyalty/members/{}/{}", m["company_id"], m["id"]);
    let (status, adj, _) = post(
        "POST",
        format!("{uri}/adjust"),
        json!({"points": 1000, "reason": "测试补录", "request_id": "web-test-3"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{adj}");
    assert_eq!(adj["result"]["status"], "done", "{adj}");
    let balance = adj["result"]["balance"].as_i64().expect("the page reads result.balance");
    assert!(page.contains("r.status === \"done\"") && page.contains("r.balance"));
    let (_, again, _) = post(
        "POST",
        format!("{uri}/adjust"),
        json!({"points": 1000, "reason": "测试补录", "request_id": "web-test-3"}),
    )
    .await;
    assert_eq!(again["result"]["status"], "already_applied", "the page says so when the status is not done");
    let tier = &r["points"]["redemption"]["coupon_tiers"][0];
    let (status, ex, _) =
        post("POST", format!("{uri}/exchange"), json!({"template": tier["template"], "request_id": "web-test-4"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{ex}");
    assert_eq!(ex["balance"].as_i64().unwrap(), balance - tier["points"].as_i64().unwrap());
    assert!(ex["code"].is_string() && page.contains("r.code") && page.contains("r.balance"));
    let d = get(uri.clone(), admin.clone()).await;
    for key in ["balance", "debt", "expiring_30d", "next_expiry"] {
        assert!(d["points"].get(key).is_some() && page.contains(&format!("p.{key}")), "points.{key}");
    }
    for key in ["ledger", "tier", "tier_name", "tier_history", "coupons"] {
        assert!(d.get(key).is_some() && page.contains(&format!("d.{key}")), "{key}");
    }
    let ledger = d["ledger"].as_array().unwrap();
    for key in ["kind", "kind_label", "points", "cause", "on_date", "expires_on", "remaining", "detail", "actor"] {
        assert!(ledger[0].get(key).is_some() && page.contains(&format!("e.{key}")), "ledger.{key}");
    }
    let kinds: Vec<&str> = ledger.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"adjust") && kinds.contains(&"redeem"), "{kinds:?}");
    // The ledger call pages by id (the page's “older entries”) and filters by kind.
    let first = get(format!("{uri}/ledger?limit=1"), admin.clone()).await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 1);
    assert_eq!((&first["entries"][0]["id"], &first["more"]), (&ledger[0]["id"], &json!(ledger.len() > 1)));
    assert!(page.contains("r.entries") && page.contains("r.more") && page.contains("before_id"));
    let next = get(format!("{uri}/ledger?limit=1&before_id={}", ledger[0]["id"]), admin.clone()).await;
    assert_eq!(next["entries"][0]["id"], ledger[1]["id"]);
    let adjusts = get(format!("{uri}/ledger?kind=adjust"), admin.clone()).await;
    assert!(adjusts["entries"].as_array().unwrap().iter().all(|e| e["kind"] == "adjust"));
    assert_eq!(adjusts["entries"].as_array().unwrap().len(), kinds.iter().filter(|k| **k == "adjust").count());
    let (status, _, _) = call(&app, "GET", &format!("{uri}/ledger?kind=bogus"), Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for e in ledger {
        let (kind, cause) = (e["kind"].as_str().unwrap(), e["cause"].as_str().unwrap());
        assert!(page.contains(&format!("ek_{kind}: [")), "ek_{kind}");
        let prefix = cause.trim_start_matches("debt:").split(':').next().unwrap();
        assert!(page.contains(&format!("ca_{prefix}: [")), "ca_{prefix} for {cause}");
    }
    let coupon = &d["coupons"][0];
    for key in ["display_code", "name", "status", "valid_from", "valid_to", "rules"] {
        assert!(!coupon[key].is_null() && page.contains(&format!("x.{key}")), "coupon.{key}");
    }
    for c in d["coupons"].as_array().unwrap() {
        assert!(page.contains(&format!("cs_{}: [", c["status"].as_str().unwrap())), "{c}");
    }
    // Tier history after the review: some member of the first page has one.
    let all = get("/api/v1/members?company=TJG&per_page=40".into(), admin.clone()).await;
    let mut history = None;
    for m in all["members"].as_array().unwrap() {
        let d = get(format!("/api/v1/loyalty/members/{}/{}", m["company_id"], m["id"]), admin.clone()).await;
        if let Some(h) = d["tier_history"].as_array().and_then(|h| h.first()) {
            history = Some(h.clone());
            break;
        }
    }
    let h = history.expect("a member with a tier change");
    for key in ["from_tier", "to_tier", "reason", "at", "actor"] {
        assert!(h.get(key).is_some() && page.contains(&format!("h.{key}")), "tier_history.{key}");
    }

    // A clerk's writes are refused with the server's Chinese message, which the page shows.
    let clerk = login(&app, "tjg-clerk").await;
    let me = get("/api/v1/me".into(), clerk.clone()).await;
    assert_eq!(me["role"], "clerk");
    assert!(page.contains(r#"["group_admin", "company_admin"].includes(me.role)"#), "canAdmin");
    for (method, uri, body) in [
        ("PUT", "/api/v1/loyalty/rules", Some(json!({"company": "TJG", "toml": toml}))),
        ("POST", "/api/v1/loyalty/coupons/M100J20/enable", Some(json!({"company": "TJG"}))),
        ("POST", "/api/v1/loyalty/coupons/M100J20/disable?company=TJG", None),
        ("POST", "/api/v1/loyalty/jobs/expire-points?company=TJG", None),
    ] {
        let (status, err, _) = call(&app, method, uri, Some(&clerk), None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().contains("无权"), "{err}");
    }
    app.db.cleanup().await;
}
