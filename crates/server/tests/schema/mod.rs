//! Answers checked against the OpenAPI document's response schemas (a small JSON Schema subset:
//! `$ref`, `oneOf`/`anyOf`/`allOf`, `type` incl. nullable lists, `properties`, `required`,
//! `items`, `additionalProperties`).

use serde_json::{Value, json};

/// Checks an answer against the OpenAPI document's schema for `method path` and `status`: the
/// types, the required fields, and no field the document does not name — what a client generated
/// from the document alone would accept.
pub fn check_response(doc: &Value, method: &str, path: &str, status: u16, v: &Value) {
    let errors = response_errors(doc, method, path, status, v);
    assert!(errors.is_empty(), "{method} {path} {status} answered outside its schema: {errors:#?}\n{v:#}");
}

/// What [`check_response`] finds wrong, one line per problem.
pub fn response_errors(doc: &Value, method: &str, path: &str, status: u16, v: &Value) -> Vec<String> {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    if !schema.is_object() {
        return vec![format!("{method} {path} {status}: the document gives no JSON schema")];
    }
    let mut errors = Vec::new();
    conform(doc, schema, v, "$", &mut errors);
    errors
}

fn conform(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")];
        if target.is_null() {
            errors.push(format!("{at}: {r} is not in the document"));
        } else {
            conform(doc, target, v, at, errors);
        }
        return;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[key].as_array() {
            let fits = |s: &Value| {
                let mut e = Vec::new();
                conform(doc, s, v, at, &mut e);
                e.is_empty()
            };
            if !alternatives.iter().any(fits) {
                errors.push(format!("{at}: {v} fits none of its {key}"));
            }
            return;
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            conform(doc, s, v, at, errors);
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        errors.push(format!("{at}: {v} is not of type {types:?}"));
        return;
    }
    match v {
        Value::Object(map) => {
            let Some(props) = schema["properties"].as_object() else { return };
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    errors.push(format!("{at}.{name}: required, missing"));
                }
            }
            let open = schema["additionalProperties"].is_object() || schema["additionalProperties"] == json!(true);
            for (k, x) in map {
                match props.get(k) {
                    Some(s) => conform(doc, s, x, &format!("{at}.{k}"), errors),
                    None if !open => errors.push(format!("{at}.{k}: answered but not in the document")),
                    None => {}
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, x) in items.iter().enumerate() {
                conform(doc, &schema["items"], x, &format!("{at}[{i}]"), errors);
            }
        }
        _ => {}
    }
}
