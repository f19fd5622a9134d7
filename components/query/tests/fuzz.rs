//! Fuzzes the API from its own OpenAPI document against the stack's OpenSearch and Redis: for
//! every documented operation, proptest builds requests from each parameter's schema (valid
//! values, boundary values and garbage alike). No answer may be a 5xx, and every 4xx must have
//! a JSON body with its status code.

mod common;

use common::{MIN, iso, loaded};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use utoipa::OpenApi as _;

/// Cases per operation.
const CASES: u32 = 64;

/// One documented parameter.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    in_path: bool,
    kind: String,
    /// Words of the description (candidate enum values such as `asc` or `ERROR`).
    words: Vec<String>,
}

fn operations(doc: &Value) -> Vec<(String, Vec<Param>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(op) = item.get("get") else { continue };
        let params = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Param {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                in_path: p["in"] == "path",
                kind: p["schema"]["type"]
                    .as_str()
                    .or_else(|| p["schema"]["type"][0].as_str())
                    .unwrap_or("string")
                    .to_owned(),
                words: p["description"]
                    .as_str()
                    .unwrap_or_default()
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
            .collect();
        out.push((path.clone(), params));
    }
    out
}

/// Values for one parameter: absent (`None`) or text.
fn value(param: &Param, t0: i64) -> BoxedStrategy<Option<String>> {
    let garbage = prop_oneof![
        Just(String::new()),
        "[ -~]{0,24}",
        "\\PC{0,12}",
        Just("99999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("NaN".to_owned()),
        Just("1e309".to_owned()),
    ];
    let typed: BoxedStrategy<String> = match (param.kind.as_str(), param.name.as_str()) {
        ("integer", _) => prop_oneof![
            (0u64..300).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
        ]
        .boxed(),
        ("number", _) => prop_oneof![
            (0.0f64..200.0).prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
        ]
        .boxed(),
        (_, "from" | "to") => prop_oneof![
            (-3 * 24 * 60i64..3 * 24 * 60).prop_map(move |m| iso(t0 + m * MIN)),
            (0i64..4_102_444_800_000).prop_map(iso),
            Just("2026-11-25".to_owned()),
            Just("2026-13-45T99:00:00Z".to_owned()),
        ]
        .boxed(),
        (_, "interval") => (
            0u64..100_000,
            prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", "S", ""]),
        )
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        _ if !param.words.is_empty() => prop_oneof![
            prop::sample::select(param.words.clone()),
            prop::sample::select(param.words.clone()).prop_map(|w| w.to_lowercase()),
            Just("checkout".to_owned()),
            Just("production".to_owned()),
        ]
        .boxed(),
        _ => prop_oneof![
            Just("checkout".to_owned()),
            Just("GET /orders".to_owned()),
            Just("trace-0-0".to_owned()),
            "[a-z/ %.]{1,16}",
        ]
        .boxed(),
    };
    if param.in_path {
        prop_oneof![3 => typed, 1 => garbage.prop_filter("path segments are not empty", |s| !s.is_empty())]
            .prop_map(Some)
            .boxed()
    } else {
        prop_oneof![2 => Just(None), 3 => typed.prop_map(Some), 1 => garbage.prop_map(Some)].boxed()
    }
}

fn url(template: &str, params: &[Param], values: &[Option<String>]) -> String {
    let mut path = template.to_owned();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (param, value) in params.iter().zip(values) {
        let Some(v) = value else { continue };
        if param.in_path {
            let encoded = utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
            path = path.replace(&format!("{{{}}}", param.name), &encoded);
        } else {
            query.append_pair(&param.name, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

#[test]
fn no_documented_request_gets_a_5xx_and_every_4xx_is_json() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (world, data) = rt.block_on(loaded("q-fuzz")).expect("world");
    rt.block_on(world.roll((0..10).map(|m| data.t0 + m * MIN)))
        .expect("rollups");
    let _runtime = rt.enter();
    let api = world.api(&[]).expect("api");
    let doc = serde_json::to_value(panopticon_query::openapi::ApiDoc::openapi()).expect("doc");
    let operations = operations(&doc);
    assert_eq!(operations.len(), panopticon_query::ROUTES.len());
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    for (template, params) in operations {
        let strategy: Vec<BoxedStrategy<Option<String>>> =
            params.iter().map(|p| value(p, data.t0)).collect();
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |values| {
                let uri = url(&template, &params, &values);
                let answer = rt.block_on(api.get(&uri));
                *seen.borrow_mut().entry(answer.status.as_u16()).or_default() += 1;
                if answer.status.is_server_error() {
                    return Err(TestCaseError::fail(format!(
                        "GET {uri} answered {}: {}",
                        answer.status, answer.text
                    )));
                }
                if answer.status.is_client_error() {
                    prop_assert_eq!(
                        answer.json["statusCode"].as_u64(),
                        Some(u64::from(answer.status.as_u16())),
                        "GET {} answered {} without a JSON body: {}",
                        uri,
                        answer.status,
                        answer.text
                    );
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{template}: {e}"));
    }
    // The generator reaches both valid and invalid requests.
    let seen = seen.into_inner();
    eprintln!("statuses: {seen:?}");
    assert!(seen.get(&200).copied().unwrap_or(0) > 100, "{seen:?}");
    assert!(seen.get(&400).copied().unwrap_or(0) > 50, "{seen:?}");
}
