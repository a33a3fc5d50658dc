//! The served OpenAPI document says what the node does: links a client (or Schemathesis, in
//! `make api-fuzz`) can follow, defined security schemes, and refusals with documented statuses in
//! JSON `{code, message}`, the framework's own included. Regressions of what the API fuzzing found.

use crate::support::*;
use serde_json::Value;

fn node() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().expect("tmp");
    // Every role with routes but vision (which needs the models and adds none).
    let server = Server::start_roles(&tmp.path().join("data"), "ingest,sql,rewards,tiles", &[]);
    (tmp, server)
}

fn operations(api: &Value) -> Vec<(String, String, &Value)> {
    let paths = api["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, ops)| {
            let ops = ops.as_object().expect("operations");
            ops.iter().map(move |(method, op)| (method.to_uppercase(), path.clone(), op))
        })
        .collect()
}

#[test]
fn links_and_security_schemes_resolve() {
    let (_tmp, server) = node();
    let api = server.openapi();
    let ops = operations(&api);
    let ids: Vec<&str> = ops.iter().filter_map(|(_, _, op)| op["operationId"].as_str()).collect();
    let schemes = api["components"]["securitySchemes"].as_object().expect("securitySchemes");
    let mut links = 0;
    for (method, path, op) in &ops {
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{method} {path}: undefined security scheme {name}");
            }
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str();
                assert!(
                    target.is_some_and(|t| ids.contains(&t)),
                    "{method} {path} {status} link {name}: no operationId of this document: {link}"
                );
                links += 1;
            }
        }
    }
    // The upload chain: register -> open -> frame -> commit -> status.
    let link = |path: &str, method: &str, status: &str, name: &str| {
        api["paths"][path][method]["responses"][status]["links"][name]["operationId"].clone()
    };
    assert_eq!(link("/v1/devices", "post", "201", "upload"), "open_capture");
    assert_eq!(link("/v1/captures", "post", "201", "upload_frame"), "put_frame");
    assert_eq!(link("/v1/captures/{id}/frames/{sha256}", "put", "201", "commit"), "commit");
    assert_eq!(link("/v1/captures/{id}/commit", "post", "202", "status"), "status");
    assert!(links >= 10, "{links} links");
}

/// The documented operation (method, path template) if any, the request, its status and code.
type Case<'a> = (Option<(&'a str, &'a str)>, reqwest::blocking::RequestBuilder, u16, &'a str);

#[test]
fn refusals_are_json_with_documented_statuses() {
    let (_tmp, server) = node();
    let api = server.openapi();
    let http = server.http();
    let url = |p: &str| format!("{}{p}", server.url);
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    let cases: Vec<Case> = vec![
        (Some(("get", "/v1/devices/{id}")), http.get(url("/v1/devices/0")), 400, "device_id_invalid"),
        (
            Some(("post", "/v1/devices/{id}/revoke")),
            http.post(url("/v1/devices/0/revoke")).header("authorization", &auth),
            400,
            "device_id_invalid",
        ),
        (
            Some(("post", "/v1/redactions/{id}/approve")),
            http.post(url("/v1/redactions/0/approve"))
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(r#"{"note": null, "unknown": 42}"#),
            422,
            "redaction_invalid",
        ),
        (
            Some(("get", "/v1/cells/{cell}/frames")),
            http.get(url("/v1/cells/8a1fb46622dffff/frames?limit=-1")),
            400,
            "bad_request",
        ),
        (None, http.get(url("/no/such/route")), 404, "not_found"),
        (None, http.get(url("/v1/devices/challenge")), 405, "method_not_allowed"),
        (None, http.post(url("/v1/zones")).body(vec![b'a'; 70_000]), 413, "body_too_large"),
    ];
    for (documented, request, status, code) in cases {
        let resp = request.send().expect("send");
        let allow = resp.headers().get("allow").cloned();
        assert_refused(resp, status, code);
        if status == 405 {
            assert_eq!(allow.as_ref().and_then(|v| v.to_str().ok()), Some("POST"), "405 keeps Allow");
        }
        if let Some((method, path)) = documented {
            let responses = &api["paths"][path][method]["responses"];
            assert!(
                responses.get(status.to_string()).is_some(),
                "{method} {path}: {status} is not documented"
            );
        }
    }
}
