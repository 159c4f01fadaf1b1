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
