//! Feast groups against a real redis-server: a model version reads one of its groups in
//! Feast's Redis layout (written by `fti-serve materialize` as Feast writes it), with
//! freshness, not-found versus missing, and the same answers as the native layout. The
//! comparison with Feast's own SDK is `tests/feast` (pytest).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Redis, Server, add_version_copy, redis_config, registry_copy};
use fti_serve::config::{Config, FeatureFileConfig, StoreKind};
use fti_serve::features::event_time::EventTime;
use fti_serve::features::feast::{self, KeyType};
use serde_json::{Value, json};

const FRESH: [&str; 2] = ["4111000000000001", "4111000000000002"];
const STALE: &str = "4111000000000003";
const NULLS: &str = "4111000000000004";

/// Version 3 of the example: version 2 with its `card_profile` group read from Feast's
/// layout (project `fraud`, view `card_profile`, an int64 join key), at most a day old.
fn add_feast_version(registry: &Path) {
    add_version_copy(registry, 2, 3);
    let manifest = registry.join("fraud/3/manifest.toml");
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let groups = m["feature_view"]["groups"].as_array().unwrap().clone();
    let mut groups: Vec<toml::Value> = groups;
    let profile = groups.iter_mut().find(|g| g["name"].as_str() == Some("card_profile")).unwrap();
    let profile = profile.as_table_mut().unwrap();
    profile.insert("name".into(), "card_profile_feast".into());
    profile.insert("max_age_ms".into(), toml::Value::Integer(86_400_000));
    let feast: toml::Table = toml::from_str(
        r#"project = "fraud"
           view = "card_profile"
           key_types = { cc_num = "int64" }"#,
    )
    .unwrap();
    profile.insert("feast".into(), toml::Value::Table(feast));
    m["feature_view"].as_table_mut().unwrap().insert("groups".into(), toml::Value::Array(groups));
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

/// The example's card profiles of FRESH as they are, one row a week old (stale), one with
/// empty cells (Feast's nulls); event times at microsecond precision.
fn write_profiles(dir: &Path, now: i64) -> (std::path::PathBuf, Vec<i64>) {
    let example = std::fs::read_to_string(common::feature_file("card_profile", "csv")).unwrap();
    let mut lines = example.lines();
    let header = lines.next().unwrap();
    let mut out = format!("{header},event_timestamp\n");
    let mut times = Vec::new();
    for (i, line) in lines.take(4).enumerate() {
        let micros = match i {
            2 => (now - 7 * 86_400) * 1_000_000 + 250_000,
            _ => (now - 3600) * 1_000_000 + 123_456,
        };
        times.push(micros);
        let time =
            EventTime { seconds: micros.div_euclid(1_000_000), nanos: (micros % 1_000_000) as i32 * 1000 };
        let line = if i == 3 {
            // Every feature empty (nulls), the key kept.
            let key = line.split(',').next().unwrap();
            format!("{key},,,,")
        } else {
            line.to_string()
        };
        out.push_str(&format!("{line},{}\n", time.rfc3339()));
    }
    let path = dir.join("card_profile_feast.csv");
    std::fs::write(&path, out).unwrap();
    (path, times)
}

fn config_for(registry: &Path, redis: &Redis) -> Config {
    let mut config = redis_config(redis);
    config.registry.path = registry.to_path_buf();
    config
}

async fn materialize(config: &Config, group: &str, file: &Path, url: &str) {
    let schema = fti_serve::cli::materialize::registry_schema(config, group).unwrap().unwrap();
    let args = fti_serve::cli::materialize::MaterializeArgs {
        group: group.to_string(),
        file: file.to_path_buf(),
        redis_url: url.to_string(),
        prefix: "fti:".into(),
        keys: None,
        batch_size: 2,
        timestamp_column: "event_timestamp".into(),
        keep_going: false,
        progress: false,
    };
    fti_serve::cli::materialize::run(&args, schema).await.unwrap();
}

fn request(cc_num: &str) -> Value {
    json!({
        "entities": {"cc_num": cc_num},
        "features": {"amount": 120.5, "lat": 59.33, "lon": 18.06, "ts": 1_764_000_000, "merchant_category": "online"},
        "return_features": true,
    })
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn a_feast_group_reads_what_feast_layout_holds_with_freshness_and_not_found() {
    let registry = registry_copy();
    add_feast_version(registry.path());
    let redis = Redis::start();
    let config = config_for(registry.path(), &redis);
    let now = now();
    let (file, times) = write_profiles(registry.path(), now);
    common::materialize_into(&redis.url()).await;
    materialize(&config, "card_profile_feast", &file, &redis.url()).await;

    // The bytes are Feast's: key, hashed field, double value, `_ts` timestamp.
    let mut conn = redis.conn();
    let key = feast::redis_key(&[("cc_num", KeyType::Int64, FRESH[0])], "fraud").unwrap();
    let stored: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(&key)
        .arg(feast::feature_field("card_profile", "home_lat"))
        .arg(feast::timestamp_field("card_profile"))
        .query(&mut conn)
        .unwrap();
    let mut want_value = vec![0x29];
    want_value.extend_from_slice(&59.3293f64.to_le_bytes());
    assert_eq!(stored[0].as_deref(), Some(&want_value[..]));
    let ts = feast::decode_timestamp(stored[1].as_deref().unwrap()).unwrap();
    assert_eq!(ts.micros(), times[0]);

    let server = Server::start(&config).await;
    let metric = || async {
        let (_, text) = server.get_text("/metrics").await;
        text.lines()
            .find(|l| l.starts_with("fti_feature_stale_reads_total{group=\"card_profile_feast\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };

    for (i, cc) in FRESH.iter().enumerate() {
        let (status, v3) = server.post("/v1/models/fraud/versions/3/predict", &request(cc)).await;
        assert_eq!(status, 200, "{v3}");
        let group = &v3["groups"]["card_profile_feast"];
        assert_eq!(group["status"], "found", "{v3}");
        let want_time = EventTime {
            seconds: times[i].div_euclid(1_000_000),
            nanos: (times[i] % 1_000_000) as i32 * 1000,
        };
        assert_eq!(group["event_timestamp"], want_time.rfc3339().as_str());
        // The native group of version 2 holds the same values: the same answer.
        let (_, v2) = server.post("/v1/models/fraud/versions/2/predict", &request(cc)).await;
        assert_eq!(v3["outputs"], v2["outputs"], "{cc}: Feast layout and native disagree");
        assert_eq!(v3["features"], v2["features"], "{cc}");
        assert_eq!(v3["groups"]["card_activity"]["status"], "found");
        assert_eq!(v3["groups"]["card_activity"]["event_timestamp"], Value::Null);
    }
    assert_eq!(metric().await, 0);

    // Stale: the stored values are shown, but the model gets the defaults.
    let (status, body) = server.post("/v1/models/fraud/versions/3/predict", &request(STALE)).await;
    assert_eq!(status, 200, "{body}");
    let group = &body["groups"]["card_profile_feast"];
    assert_eq!(group["status"], "stale", "{body}");
    assert!(group["values"]["home_lat"].is_number(), "{body}");
    let missing: Vec<&str> =
        body["missing_features"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for f in ["home_lat", "home_lon", "card_created_ts", "credit_limit"] {
        assert!(missing.contains(&f), "{f} not missing in {body}");
    }
    assert_eq!(metric().await, 1);

    // Found with null values: each feature missing on its own; the entity is found.
    let (_, body) = server.post("/v1/models/fraud/versions/3/predict", &request(NULLS)).await;
    let group = &body["groups"]["card_profile_feast"];
    assert_eq!(group["status"], "found", "{body}");
    assert_eq!(group["values"]["credit_limit"], Value::Null, "{body}");

    // Unknown entity: not found (Feast itself would say "present, empty").
    let (_, body) = server.post("/v1/models/fraud/versions/3/predict", &request("4111999999999999")).await;
    assert_eq!(body["groups"]["card_profile_feast"]["status"], "not_found", "{body}");
    assert_eq!(body["groups"]["card_profile_feast"]["event_timestamp"], Value::Null);

    // An int64 join key that is not an integer is the client's error, named.
    let (status, body) = server.post("/v1/models/fraud/versions/3/predict", &request("card-1")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "entities.cc_num", "{body}");
    assert!(body["error"].as_str().unwrap().contains("int64"), "{body}");
}

#[tokio::test]
async fn the_embedded_store_holds_feast_groups_in_feasts_layout_too() {
    let registry = registry_copy();
    add_feast_version(registry.path());
    let (file, _) = write_profiles(registry.path(), now());
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    config.store.kind = StoreKind::Memory;
    config.store.memory.files.push(FeatureFileConfig {
        group: "card_profile_feast".into(),
        path: file,
        keys: None,
    });
    let server = Server::start(&config).await;
    let (status, v3) = server.post("/v1/models/fraud/versions/3/predict", &request(FRESH[0])).await;
    assert_eq!(status, 200, "{v3}");
    assert_eq!(v3["groups"]["card_profile_feast"]["status"], "found", "{v3}");
    let (_, v2) = server.post("/v1/models/fraud/versions/2/predict", &request(FRESH[0])).await;
    assert_eq!(v3["outputs"], v2["outputs"]);
    let (_, body) = server.post("/v1/models/fraud/versions/3/predict", &request(STALE)).await;
    assert_eq!(body["groups"]["card_profile_feast"]["status"], "stale", "{body}");
}

#[test]
fn feast_declarations_are_checked_when_a_version_loads() {
    use fti_serve::features::{FeatureView, FeatureViewSpec};
    let view = |group: &str| -> Result<FeatureView, String> {
        let text = format!(
            r#"name = "v"
               entities = ["driver_id"]
               input = ["conv_rate"]
               [[groups]]
               {group}"#
        );
        let spec: FeatureViewSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        FeatureView::compile(spec).map_err(|e| e.to_string())
    };
    let features = r#"features = [{ name = "conv_rate", dtype = "float" }]"#;
    let ok = format!(
        r#"name = "g"
           entities = ["driver_id"]
           max_age_ms = 1000
           {features}
           feast = {{ project = "p", view = "driver_stats", key_types = {{ driver_id = "string" }} }}"#
    );
    view(&ok).unwrap();
    let cases = [
        (ok.replace(r#""string" } }"#, r#""string" }, key_version = 2 }"#), "version 2"),
        (ok.replace(r#"key_types = { driver_id = "string" }"#, "key_types = {}"), "has no type"),
        (ok.replace(r#"driver_id = "string""#, r#"driver_id = "string", other = "int64""#), "not an entity"),
        (ok.replace(r#"dtype = "float""#, r#"dtype = "float", feast_type = "int32""#), "does not hold"),
        (ok.replace("max_age_ms = 1000", "max_age_ms = 0"), "above 0"),
        (
            format!("name = \"g\"\nentities = [\"driver_id\"]\nmax_age_ms = 5\n{features}"),
            "needs a Feast group",
        ),
        (
            "name = \"g\"\nentities = [\"driver_id\"]\nfeatures = [{ name = \"conv_rate\", dtype = \"float\", \
             feast_type = \"float32\" }]"
                .to_string(),
            "applies to Feast groups",
        ),
        (ok.replace(r#"project = "p""#, r#"project = """#), "must not be empty"),
    ];
    for (group, want) in cases {
        let err = view(&group).expect_err(&group);
        assert!(err.contains(want), "{group}\n=> {err}\nwanted {want:?}");
    }
}
