//! Structure-aware fuzzing of every decoder a client or an operator can feed: `/v1`
//! predict JSON, OIP REST (JSON and the binary extension), OIP gRPC and `fti.v1`
//! messages (structured and as raw protobuf bytes), `manifest.toml`, feature-view
//! expressions and config files. Generators make near-valid inputs (valid JSON with
//! hostile shapes, sizes, numbers, nesting and unicode) as well as random bytes. Client
//! input goes on through the core to a real model: no case may panic, and every refusal
//! must be a 4xx (gRPC: a client-side code).
//!
//! Cases per target: `FTI_FUZZ_CASES` (default 10,000; the long run in BENCHMARKS.md
//! uses 1,000,000 in release: `FTI_FUZZ_CASES=1000000 cargo test --release --test fuzz`).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use fti_serve::app::App;
use fti_serve::grpc::pb::{fti as fpb, inference as ipb};
use fti_serve::predict::{Predictor, Target};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use prost::Message;
use serde_json::{Map, Number, Value};

fn cases() -> u32 {
    std::env::var("FTI_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig { cases: cases(), failure_persistence: None, ..RunnerConfig::default() })
}

/// One server core for every case: the example registry and its embedded store.
struct Core {
    rt: tokio::runtime::Runtime,
    predictor: Predictor,
    _app: App,
}

fn core() -> &'static Core {
    static CORE: OnceLock<Core> = OnceLock::new();
    CORE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut config = common::example_config();
        config.log.level = "error".into();
        config.server.max_batch_rows = 64;
        let app = rt.block_on(App::build(&config)).unwrap();
        Core { predictor: app.predictor.clone(), _app: app, rt }
    })
}

const FIELDS: &[&str] = &[
    "entities",
    "features",
    "rows",
    "return_features",
    "cc_num",
    "amount",
    "lat",
    "lon",
    "ts",
    "merchant_category",
    "inputs",
    "outputs",
    "name",
    "shape",
    "datatype",
    "data",
    "parameters",
    "binary_data_size",
    "id",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_string),
        1 => "\\PC{0,12}",
        1 => Just(String::new()),
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        proptest::sample::select(vec![
            0.0,
            -0.0,
            1e308,
            -1e308,
            f64::MIN_POSITIVE,
            9_007_199_254_740_993.0,
            0.5,
            -1.0,
        ])
        .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        "\\PC{0,24}".prop_map(Value::String),
        "[0-9]{1,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A `/v1` row: the real field names with values of any shape.
fn row() -> impl Strategy<Value = Value> {
    let entity = prop_oneof![
        3 => proptest::sample::select(vec!["4111000000000001", "4111000000000002", "", "x"]).prop_map(Value::from),
        1 => json(),
    ];
    let features = proptest::collection::vec(
        (proptest::sample::select(vec!["amount", "lat", "lon", "ts", "merchant_category", "other"]), json()),
        0..7,
    );
    (entity, features, any::<bool>()).prop_map(|(cc, features, with_entities)| {
        let mut row = Map::new();
        if with_entities {
            row.insert("entities".into(), serde_json::json!({ "cc_num": cc }));
        }
        row.insert(
            "features".into(),
            Value::Object(features.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        );
        Value::Object(row)
    })
}

fn predict_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => row().prop_map(|r| serde_json::to_vec(&r).unwrap()),
        2 => (proptest::collection::vec(row(), 0..80), json())
            .prop_map(|(rows, rf)| serde_json::to_vec(&serde_json::json!({ "rows": rows, "return_features": rf })).unwrap()),
        2 => json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => (1usize..20_000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn assert_client_error(status: axum::http::StatusCode, what: &str) {
    assert!(status.is_client_error(), "{what}: answered {status}");
}

#[test]
fn v1_predict_json() {
    let core = core();
    runner()
        .run(&predict_body(), |body| {
            // The fast path takes a body only as the checked path does.
            if let Some(fast) = fti_serve::http::dto::parse_predict_fast(&body) {
                let checked = fti_serve::http::dto::parse_predict_checked(&body);
                assert_eq!(checked.as_ref().ok(), Some(&fast), "{}", String::from_utf8_lossy(&body));
            }
            match fti_serve::http::dto::parse_predict(&body) {
                Err(e) => assert_client_error(e.status, &e.body.error),
                Ok(request) => {
                    let result =
                        core.rt.block_on(core.predictor.predict("fraud", &Target::Version(1), request));
                    if let Err(e) = result {
                        assert_client_error(fti_serve::http::error::status_of(&e), &e.to_string());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// An OIP input tensor: the real fields with hostile shapes, types and data.
fn oip_input() -> impl Strategy<Value = Value> {
    let dim = prop_oneof![
        4 => (0u64..40).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        1 => json(),
    ];
    let shape = prop_oneof![
        4 => proptest::collection::vec(dim, 0..4).prop_map(Value::Array),
        1 => json(),
    ];
    let datatype = prop_oneof![
        4 => proptest::sample::select(vec!["FP32", "FP64", "INT32", "INT64", "BYTES", "BOOL", ""]).prop_map(Value::from),
        1 => json(),
    ];
    let data = prop_oneof![
        3 => proptest::collection::vec(hostile_number(), 0..64).prop_map(Value::Array),
        1 => json(),
    ];
    let binary =
        prop_oneof![2 => Just(None), 1 => any::<u64>().prop_map(Some), 1 => (0u64..600).prop_map(Some)];
    (prop_oneof![Just("input".to_string()), "\\PC{0,8}"], shape, datatype, data, binary).prop_map(
        |(name, shape, datatype, data, binary)| {
            let mut input = serde_json::json!({ "name": name, "shape": shape, "datatype": datatype });
            match binary {
                Some(size) => input["parameters"] = serde_json::json!({ "binary_data_size": size }),
                None => input["data"] = data,
            }
            input
        },
    )
}

fn oip_body() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    let request = || {
        (proptest::collection::vec(oip_input(), 0..3), json(), json()).prop_map(|(inputs, outputs, params)| {
            serde_json::json!({ "inputs": inputs, "outputs": outputs, "parameters": params, "id": "x" })
        })
    };
    prop_oneof![
        3 => (request(), Just(None::<String>)).prop_map(|(r, h)| (serde_json::to_vec(&r).unwrap(), h)),
        // The binary extension: a JSON header, then raw bytes, with a length header that
        // may lie.
        2 => (request(), proptest::collection::vec(any::<u8>(), 0..600), prop_oneof![Just(0i64), -5i64..5, Just(i64::MAX)])
            .prop_map(|(r, tail, skew)| {
                let mut body = serde_json::to_vec(&r).unwrap();
                let length = (body.len() as i64).saturating_add(skew);
                body.extend(tail);
                (body, Some(length.to_string()))
            }),
        1 => (json(), prop_oneof![Just(None), "\\PC{0,6}".prop_map(Some)]).prop_map(|(v, h)| (serde_json::to_vec(&v).unwrap(), h)),
        1 => (proptest::collection::vec(any::<u8>(), 0..300), prop_oneof![Just(None), "[0-9]{1,6}".prop_map(Some)]),
    ]
}

#[test]
fn oip_rest_json_and_binary() {
    let core = core();
    runner()
        .run(&oip_body(), |(body, length)| {
            let mut headers = HeaderMap::new();
            if let Some(length) = length.and_then(|l| HeaderValue::from_str(&l).ok()) {
                headers.insert("inference-header-content-length", length);
            }
            match fti_serve::http::oip::decode_infer(&headers, &body) {
                Err(e) => assert_client_error(e.status(), "decode"),
                Ok((input, _)) => {
                    if let Err(e) =
                        core.rt.block_on(core.predictor.infer("fraud", &Target::Version(1), input))
                    {
                        assert_client_error(fti_serve::http::error::status_of(&e), &e.to_string());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

fn is_client_code(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(code, Code::InvalidArgument | Code::NotFound | Code::OutOfRange | Code::FailedPrecondition)
}

fn grpc_infer_request() -> impl Strategy<Value = ipb::ModelInferRequest> {
    let dim = prop_oneof![4 => 0i64..40, 1 => any::<i64>(), 1 => Just(i64::MAX), 1 => Just(-1i64)];
    let contents = (
        proptest::collection::vec(any::<f32>(), 0..64),
        proptest::collection::vec(any::<f64>(), 0..16),
        proptest::collection::vec(any::<i64>(), 0..16),
        proptest::collection::vec(any::<i32>(), 0..16),
    )
        .prop_map(|(fp32, fp64, int64, int32)| ipb::InferTensorContents {
            fp32_contents: fp32,
            fp64_contents: fp64,
            int64_contents: int64,
            int_contents: int32,
            ..Default::default()
        });
    let tensor = (
        prop_oneof![Just("input".to_string()), "\\PC{0,8}"],
        prop_oneof![4 => proptest::sample::select(vec!["FP32", "FP64", "INT32", "INT64", "BYTES", ""]).prop_map(str::to_string), 1 => "\\PC{0,6}"],
        proptest::collection::vec(dim, 0..4),
        proptest::option::of(contents),
    )
        .prop_map(|(name, datatype, shape, contents)| ipb::model_infer_request::InferInputTensor {
            name,
            datatype,
            shape,
            parameters: Default::default(),
            contents,
        });
    (
        proptest::collection::vec(tensor, 0..3),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..3),
        prop_oneof![Just(String::new()), Just("1".to_string()), "\\PC{0,6}"],
    )
        .prop_map(|(inputs, raw, version)| ipb::ModelInferRequest {
            model_name: "fraud".into(),
            model_version: version,
            inputs,
            raw_input_contents: raw,
            ..Default::default()
        })
}

fn check_grpc_infer(core: &Core, request: &ipb::ModelInferRequest) {
    match fti_serve::grpc::inference::decode(request) {
        Err(status) => assert!(is_client_code(status.code()), "{status:?}"),
        Ok(input) => {
            let target = match Target::from_version_text("model_version", &request.model_version) {
                Ok(t) => t,
                Err(e) => return assert!(is_client_code(fti_serve::grpc::status_of(&e)), "{e}"),
            };
            if let Err(e) = core.rt.block_on(core.predictor.infer("fraud", &target, input)) {
                assert!(is_client_code(fti_serve::grpc::status_of(&e)), "{e}");
            }
        }
    }
}

#[test]
fn oip_grpc_messages() {
    let core = core();
    runner()
        .run(&grpc_infer_request(), |request| {
            check_grpc_infer(core, &request);
            Ok(())
        })
        .unwrap();
    // The same decoder behind protobuf's own: arbitrary bytes, and encodings of near-valid
    // messages with bytes flipped.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (grpc_infer_request(), any::<u16>(), any::<u8>()).prop_map(|(r, at, with)| {
            let mut b = r.encode_to_vec();
            if !b.is_empty() {
                let i = usize::from(at) % b.len();
                b[i] ^= with;
            }
            b
        }),
    ];
    runner()
        .run(&bytes, |b| {
            if let Ok(request) = ipb::ModelInferRequest::decode(&b[..]) {
                check_grpc_infer(core, &request);
            }
            Ok(())
        })
        .unwrap();
}

fn fti_value() -> impl Strategy<Value = fpb::Value> {
    let kind = prop_oneof![
        any::<f64>().prop_map(fpb::value::Kind::Number),
        proptest::sample::select(vec![f64::NAN, f64::INFINITY, -f64::INFINITY, 1e308, -0.0])
            .prop_map(fpb::value::Kind::Number),
        "\\PC{0,16}".prop_map(fpb::value::Kind::Text),
        any::<bool>().prop_map(fpb::value::Kind::Flag),
    ];
    proptest::option::of(kind).prop_map(|kind| fpb::Value { kind })
}

fn fti_request() -> impl Strategy<Value = fpb::PredictRequest> {
    let entities = proptest::collection::btree_map(
        prop_oneof![Just("cc_num".to_string()), "\\PC{0,6}"],
        prop_oneof![Just("4111000000000001".to_string()), "\\PC{0,12}"],
        0..3,
    );
    let features = proptest::collection::btree_map(
        prop_oneof![
            4 => proptest::sample::select(vec!["amount", "lat", "lon", "ts", "merchant_category"]).prop_map(str::to_string),
            1 => "\\PC{0,6}",
        ],
        fti_value(),
        0..7,
    );
    let target = (
        prop_oneof![Just("fraud".to_string()), "\\PC{0,6}"],
        prop_oneof![Just(0u64), Just(1), Just(2), any::<u64>()],
        prop_oneof![Just(String::new()), "\\PC{0,6}"],
    );
    (proptest::option::of(target), proptest::option::of((entities, features)), any::<bool>()).prop_map(
        |(target, row, rf)| fpb::PredictRequest {
            target: target.map(|(model, version, alias)| fpb::Target { model, version, alias }),
            row: row.map(|(e, f)| fpb::Row {
                entities: e.into_iter().collect(),
                features: f.into_iter().collect(),
            }),
            return_features: rf,
            request_id: Default::default(),
        },
    )
}

fn check_fti(core: &Core, request: fpb::PredictRequest) {
    let Some(target) = request.target else { return };
    let which = match (target.version, target.alias.as_str()) {
        (0, "") => Target::production(),
        (0, alias) => Target::Alias(alias.to_string()),
        (v, _) => Target::Version(v),
    };
    let row = fti_serve::grpc::prediction::row(request.row.unwrap_or_default());
    let request = fti_serve::predict::PredictRequest { rows: vec![row], ..Default::default() };
    if let Err(e) = core.rt.block_on(core.predictor.predict(&target.model, &which, request)) {
        assert!(is_client_code(fti_serve::grpc::status_of(&e)), "{e}");
    }
}

#[test]
fn fti_v1_messages() {
    let core = core();
    runner()
        .run(&fti_request(), |r| {
            check_fti(core, r);
            Ok(())
        })
        .unwrap();
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..256), |b| {
            if let Ok(r) = fpb::PredictRequest::decode(&b[..]) {
                check_fti(core, r);
            }
            Ok(())
        })
        .unwrap();
}

/// A real manifest's text with one line replaced, removed or duplicated, a random line
/// inserted, or cut short.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = text.lines().collect();
    let n = lines.len();
    let replacement = prop_oneof![
        "\\PC{0,30}",
        "[a-z_]{1,12} = (-?[0-9]{1,20}|\"\\PC{0,10}\"|true|nan|inf|\\[\\]|\\{\\})",
        Just("[[feature_view.on_demand]]".to_string()),
        Just(
            "expr = \"((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))\""
                .to_string()
        ),
    ];
    (0..n.max(1), 0u8..5, replacement, 0..text.len().max(1)).prop_map(move |(at, how, line, cut)| {
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        match how {
            0 => out[at] = line,
            1 => {
                out.remove(at);
            }
            2 => out.insert(at, out[at].clone()),
            3 => out.insert(at, line),
            _ => return text.chars().take(cut).collect(),
        }
        out.join("\n")
    })
}

#[test]
fn manifest_toml() {
    let text: &'static str = Box::leak(
        std::fs::read_to_string(common::repo().join("models/fraud/2/manifest.toml"))
            .unwrap()
            .into_boxed_str(),
    );
    runner()
        .run(&prop_oneof![4 => mutated(text), 1 => "\\PC{0,200}"], |t| {
            if let Ok(m) = fti_serve::registry::Manifest::parse(&t) {
                let _ = fti_serve::features::FeatureView::compile(m.feature_view);
            }
            Ok(())
        })
        .unwrap();
}

/// Expressions from the language's own pieces, nested, with stray tokens.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(vec![
            "amount", "lat", "category", "flag", "nope", "nan", "true", "1e309", "-0", "'x'", "\"\""
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "\\PC{0,4}",
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        let function = proptest::sample::select(vec![
            "log",
            "log1p",
            "exp",
            "sqrt",
            "abs",
            "min",
            "max",
            "clamp",
            "if",
            "coalesce",
            "is_missing",
            "hour",
            "weekday",
            "haversine",
            "one_hot",
            "bucketize",
            "lower",
            "len",
            "pow",
            "round",
            "floor",
            "nope",
        ]);
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(vec![
                    "+", "-", "*", "/", "%", "<", ">=", "==", "!=", "and", "or", ","
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (function, proptest::collection::vec(inner.clone(), 0..5))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            proptest::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

#[test]
fn feature_view_expressions() {
    use fti_serve::transform::{Compiler, Type};
    runner()
        .run(&(expression(), any::<f64>(), "\\PC{0,8}", any::<bool>()), |(expr, amount, category, flag)| {
            let mut compiler = Compiler::new();
            let amount_slot = compiler.input("amount", Type::Num).unwrap();
            compiler.input("lat", Type::Num).unwrap();
            let category_slot = compiler.input("category", Type::Str).unwrap();
            let flag_slot = compiler.input("flag", Type::Bool).unwrap();
            if compiler.define("x", &expr).is_ok() {
                let program = compiler.finish();
                let mut frame = program.frame();
                for (slot, value) in [(amount_slot, amount), (flag_slot, f64::from(u8::from(flag)))] {
                    if let fti_serve::transform::Slot::Num(i) = slot {
                        frame.nums[i] = value;
                    }
                }
                if let fti_serve::transform::Slot::Str(i) = category_slot {
                    frame.strs[i] = category;
                }
                program.run(&mut frame);
            }
            Ok(())
        })
        .unwrap();
}

/// A config file from the real sections and keys with values of any type.
fn config_text() -> impl Strategy<Value = String> {
    let key = proptest::sample::select(vec![
        ("server", "request_timeout_ms"),
        ("server", "max_body_bytes"),
        ("server", "max_batch_rows"),
        ("server", "max_in_flight"),
        ("server", "http_addr"),
        ("server", "header_read_timeout_ms"),
        ("registry", "path"),
        ("registry", "keep_latest"),
        ("store", "kind"),
        ("store", "on_error"),
        ("store.redis", "url"),
        ("store.redis", "timeout_ms"),
        ("cache", "default_ttl_ms"),
        ("inference", "backend"),
        ("ort", "sessions"),
        ("admin", "token"),
        ("log", "format"),
        ("nope", "nope"),
    ]);
    let value = prop_oneof![
        "-?[0-9]{1,22}",
        "\"\\PC{0,12}\"",
        Just("\"redis://127.0.0.1:1\"".to_string()),
        Just("\"127.0.0.1:0\"".to_string()),
        Just("true".to_string()),
        Just("nan".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("18446744073709551616".to_string()),
    ];
    proptest::collection::btree_map(key, value, 0..8).prop_map(|pairs| {
        // One table per section, as a config file has them.
        let mut text = String::new();
        let mut section = "";
        for ((s, key), value) in pairs {
            if s != section {
                text.push_str(&format!("[{s}]\n"));
                section = s;
            }
            text.push_str(&format!("{key} = {value}\n"));
        }
        text
    })
}

#[test]
fn config_files() {
    runner()
        .run(&prop_oneof![4 => config_text(), 1 => "\\PC{0,120}"], |text| {
            if let Ok(config) = fti_serve::config::Config::parse_toml(&text) {
                let _ = config.validate();
                let _ = config.server.max_in_flight();
            }
            Ok(())
        })
        .unwrap();
}
