//! The prediction log against real sinks: every record of a burst of requests reaches a
//! Redis Stream and rotating files, the export to Parquet holds them column by column, and
//! a sink that is down loses records only where the metrics say so, while every answer is
//! served. Request ids go both ways on HTTP and gRPC.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Redis, Server, eventually, golden};
use fti_serve::cli::log::{ExportArgs, Source, export};
use fti_serve::config::{Config, FilesSinkConfig, StreamSinkConfig};
use fti_serve::grpc::pb::fti as pb;
use fti_serve::grpc::pb::fti::prediction_service_client::PredictionServiceClient;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

/// The value of one series in the Prometheus text (0 when absent).
async fn metric(server: &Server, series: &str) -> f64 {
    let (_, text) = server.get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn with_log(mut config: Config) -> Config {
    config.prediction_log.enabled = true;
    config.prediction_log.queue = 65_536;
    config.prediction_log.batch = 256;
    config
}

/// Sends every golden request of `version` `rounds` times from `clients` concurrent
/// clients, every other one with its own id (`<tag>-...`); returns the request ids the
/// answers carried, in no order.
async fn burst(server: &Server, tag: &str, version: u64, rounds: usize, clients: usize) -> Vec<String> {
    let bodies: Vec<Value> = golden("fraud", version).into_iter().map(|g| g.request).collect();
    let path = format!("/v1/models/fraud/versions/{version}/predict");
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, bodies, tag) =
            (server.http.clone(), server.url(&path), bodies.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for r in (0..rounds).filter(|r| r % clients == c) {
                for (i, body) in bodies.iter().enumerate() {
                    let mut request = http.post(&url).json(body);
                    // Every other request names its own id.
                    if i % 2 == 0 {
                        request = request.header("x-request-id", format!("{tag}-{version}-{r}-{i}"));
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
                    if i % 2 == 0 {
                        assert_eq!(id, format!("{tag}-{version}-{r}-{i}"));
                    } else {
                        assert_eq!(id.len(), 32, "{id}");
                    }
                    ids.push(id);
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

/// Reads a Parquet file back: column names, and each row as (name, field).
fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<(String, Field)>>) {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let names = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .into_iter()
        .map(|row| row.unwrap().get_column_iter().map(|(n, f)| (n.clone(), f.clone())).collect())
        .collect();
    (names, rows)
}

fn field<'a>(row: &'a [(String, Field)], name: &str) -> &'a Field {
    &row.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no column {name}")).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_the_stream_and_exports_to_parquet() {
    let redis = Redis::start();
    common::materialize_example(&redis).await;
    let mut config = with_log(common::redis_config(&redis));
    config.prediction_log.stream = Some(StreamSinkConfig::default());
    let server = Server::start(&config).await;

    let rounds = 40;
    let ids = burst(&server, "b", 1, rounds, 4).await;
    let sent = ids.len();
    assert_eq!(sent, rounds * golden("fraud", 1).len());
    let written = r#"fti_prediction_log_written_total{sink="stream"}"#;
    let all_written =
        eventually(Duration::from_secs(30), async || metric(&server, written).await == sent as f64).await;
    assert!(all_written.is_some(), "written {} of {sent}", metric(&server, written).await);
    assert_eq!(metric(&server, "fti_prediction_log_accepted_total").await, sent as f64);
    assert_eq!(metric(&server, r#"fti_prediction_log_dropped_total{sink="queue"}"#).await, 0.0);

    let mut conn = redis.conn();
    let len: usize = redis::cmd("XLEN").arg("fti:predictions:fraud").query(&mut conn).unwrap();
    assert_eq!(len, sent, "stream length against the answered requests");

    // One entry, whole: what the answer said, by name.
    let goldens = golden("fraud", 1);
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("fti:predictions:fraud")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(&mut conn)
        .unwrap();
    let (_, fields) = &entries[0];
    assert_eq!(fields[0], ("model".to_string(), "fraud".to_string()));
    let record: Value = serde_json::from_str(&fields[1].1).unwrap();
    assert_eq!(record["version"], 1);
    assert_eq!(record["alias"], Value::Null);
    assert_eq!(record["arm"], "stable");
    let i = goldens.iter().position(|g| g.request["entities"] == record["entities"]).unwrap();
    assert_eq!(record["request"], goldens[i].request["features"]);
    let features = record["features"].as_object().unwrap();
    for ((_, got), want) in features.iter().zip(&goldens[i].input) {
        assert_eq!(got.as_f64().unwrap() as f32, *want as f32);
    }
    common::assert_outputs(&record["outputs"], &goldens[i].outputs, "stream record outputs");

    // Export from the stream: one row per record, ids as answered, a column per feature.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("served.parquet");
    let args = ExportArgs {
        source: Source::Stream { url: redis.url(), password: None, key: "fti:predictions:{model}".into() },
        out: out.clone(),
        model: Some("fraud".into()),
        version: Some(1),
        since: None,
        until: None,
    };
    assert_eq!(export(&args).await.unwrap(), sent);
    let (names, rows) = read_parquet(&out);
    assert_eq!(rows.len(), sent);
    assert!(names.iter().any(|n| n == "feature.log_amount"), "{names:?}");
    assert!(names.iter().any(|n| n == "entity.cc_num"), "{names:?}");
    let mut exported: Vec<String> = rows
        .iter()
        .map(|r| match field(r, "request_id") {
            Field::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let mut answered = ids.clone();
    exported.sort();
    answered.sort();
    assert_eq!(exported, answered);
    // Times in order, and a range export keeps only what lies in it.
    let times: Vec<i64> = rows
        .iter()
        .map(|r| match field(r, "time") {
            Field::TimestampMicros(us) => *us,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let middle = times[sent / 2];
    let after = ExportArgs { since: Some(format!("{}", middle as f64 / 1e6)), ..args };
    let later = export(&after).await.unwrap();
    let expected = times.iter().filter(|t| **t as f64 / 1e6 >= middle as f64 / 1e6).count();
    assert!(later < sent && later.abs_diff(expected) <= 1, "{later} of {sent}, expected {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_rotate_and_export_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut config = with_log(common::example_config());
    config.prediction_log.files =
        Some(FilesSinkConfig { dir: log.clone(), max_file_bytes: 4096, ..FilesSinkConfig::default() });
    config.prediction_log.batch = 8;
    let server = Server::start(&config).await;
    let v1 = burst(&server, "b", 1, 6, 2).await.len();
    let v2 = burst(&server, "b", 2, 6, 2).await.len();
    let written = r#"fti_prediction_log_written_total{sink="files"}"#;
    let total = (v1 + v2) as f64;
    assert!(
        eventually(Duration::from_secs(30), async || metric(&server, written).await == total).await.is_some()
    );

    let files = fti_serve::observe::files::log_files(&log).unwrap();
    assert!(files.len() > 1, "4 KiB files rotate: {files:?}");
    let lines: usize = files.iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum();
    assert_eq!(lines, v1 + v2);

    let out = dir.path().join("v2.parquet");
    let args = ExportArgs {
        source: Source::Files(log.clone()),
        out: out.clone(),
        model: Some("fraud".into()),
        version: Some(2),
        since: None,
        until: None,
    };
    assert_eq!(export(&args).await.unwrap(), v2);
    let (names, rows) = read_parquet(&out);
    assert_eq!(rows.len(), v2);
    // v2's own input features, and its outputs, each a column.
    let v2_inputs = fti_serve::registry::Manifest::read(&common::repo().join("models/fraud/2/manifest.toml"))
        .unwrap()
        .feature_view
        .input;
    for name in &v2_inputs {
        if !name.contains('*') {
            assert!(
                names
                    .iter()
                    .any(|n| n == &format!("feature.{name}") || n.starts_with(&format!("feature.{name}."))),
                "{name}: {names:?}"
            );
        }
    }
    assert!(names.iter().any(|n| n == "output.probability"), "{names:?}");
    for row in &rows {
        assert_eq!(field(row, "version"), &Field::Long(2));
    }

    // A batch written twice (a sink's retry) exports once.
    std::fs::copy(files.last().unwrap(), log.join("predictions-99990101T000000Z-000001.jsonl")).unwrap();
    let again =
        ExportArgs { out: dir.path().join("again.parquet"), source: Source::Files(log.clone()), ..args };
    assert_eq!(export(&again).await.unwrap(), v2);
    let args = again;

    // A broken line in the middle of a file is an error naming the file and line.
    std::fs::write(log.join("predictions-99991231T000000Z-000001.jsonl"), "{\"time\": 1}\n").unwrap();
    let err = export(&ExportArgs { out: dir.path().join("x.parquet"), ..args }).await.unwrap_err();
    assert!(err.contains("line 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_is_down_loses_only_counted_records_and_serves_every_answer() {
    // A stream on a port where nothing listens; a tiny queue.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let mut config = with_log(common::example_config());
    config.prediction_log.queue = 2;
    config.prediction_log.batch = 1;
    config.prediction_log.stream = Some(StreamSinkConfig {
        url: format!("redis://127.0.0.1:{port}"),
        timeout_ms: 200,
        ..StreamSinkConfig::default()
    });
    let server = Server::start(&config).await;
    let sent = burst(&server, "b", 1, 30, 4).await.len();

    let series = [
        "fti_prediction_log_accepted_total",
        r#"fti_prediction_log_dropped_total{sink="queue"}"#,
        r#"fti_prediction_log_dropped_total{sink="stream"}"#,
        r#"fti_prediction_log_written_total{sink="stream"}"#,
    ];
    // Every record is accounted for: queued or dropped at the queue; of the queued, none
    // written, a few held for the retry, the rest dropped at the sink.
    let accounted = eventually(Duration::from_secs(30), async || {
        let [accepted, queue, stream, written] = [
            metric(&server, series[0]).await,
            metric(&server, series[1]).await,
            metric(&server, series[2]).await,
            metric(&server, series[3]).await,
        ];
        accepted + queue == sent as f64 && written == 0.0 && accepted - stream <= 4.0
    })
    .await;
    let mut figures = Vec::new();
    for s in series {
        figures.push(metric(&server, s).await);
    }
    assert!(accounted.is_some(), "{series:?} = {figures:?} of {sent}");
    assert!(figures[1] + figures[2] > 0.0);
    assert_eq!(metric(&server, r#"fti_prediction_log_sink_up{sink="stream"}"#).await, 0.0);
    assert!(metric(&server, r#"fti_prediction_log_write_errors_total{sink="stream"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_over_grpc() {
    let server = Server::start(&common::example_config()).await;
    let mut client = PredictionServiceClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();
    let g = &golden("fraud", 1)[0];
    let target = Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() });
    let request = || pb::PredictRequest {
        target: target.clone(),
        row: Some(common::grpc_row(&g.request)),
        ..Default::default()
    };

    // From the metadata, back in the metadata and the body.
    let mut call = tonic::Request::new(request());
    call.metadata_mut().insert("x-request-id", "grpc-1".parse().unwrap());
    let answer = client.predict(call).await.unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "grpc-1");
    assert_eq!(answer.into_inner().request_id, "grpc-1");

    // The message's field wins over the metadata; none at all: one is made.
    let mut call = tonic::Request::new(pb::PredictRequest { request_id: "field-2".into(), ..request() });
    call.metadata_mut().insert("x-request-id", "grpc-2".parse().unwrap());
    assert_eq!(client.predict(call).await.unwrap().into_inner().request_id, "field-2");
    let made = client.predict(request()).await.unwrap().into_inner().request_id;
    assert_eq!(made.len(), 32);

    // Streams carry ids in the messages.
    let messages = vec![pb::PredictRequest { request_id: "s-1".into(), ..request() }, request()];
    let mut stream = client.predict_stream(tokio_stream::iter(messages)).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().request_id, "s-1");
    assert_eq!(stream.message().await.unwrap().unwrap().request_id.len(), 32);

    // A bad one is refused naming it.
    let status =
        client.predict(pb::PredictRequest { request_id: "has space".into(), ..request() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("x-request-id"), "{}", status.message());

    // HTTP: a bad header is a 400 naming it.
    let response = server
        .http
        .post(server.url("/v1/models/fraud/predict"))
        .header("x-request-id", "x".repeat(129))
        .json(&g.request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sink_keeps_its_backlog_while_redis_restarts() {
    // The stream on a Redis of its own; the store is the embedded one.
    let mut redis = Redis::start();
    let mut config = with_log(common::example_config());
    config.prediction_log.stream =
        Some(StreamSinkConfig { url: redis.url(), timeout_ms: 200, ..StreamSinkConfig::default() });
    let server = Server::start(&config).await;
    let written = r#"fti_prediction_log_written_total{sink="stream"}"#;
    let up = r#"fti_prediction_log_sink_up{sink="stream"}"#;
    let before = burst(&server, "before", 1, 2, 1).await.len() as f64;
    assert!(
        eventually(Duration::from_secs(30), async || metric(&server, written).await == before)
            .await
            .is_some()
    );

    redis.stop();
    let during = burst(&server, "during", 1, 2, 1).await;
    let failed = eventually(Duration::from_secs(30), async || metric(&server, up).await == 0.0).await;
    assert!(failed.is_some(), "the sink reports the failed write");
    redis.restart();
    let after = burst(&server, "after", 1, 2, 1).await;

    // What was answered while Redis was down waited in the backlog and arrives with the
    // rest (the restarted Redis lost what it held before: nothing is persisted here).
    let mut conn = redis.conn();
    let mut missing = Vec::new();
    let arrived = eventually(Duration::from_secs(30), async || {
        let entries: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XRANGE").arg("fti:predictions:fraud").arg("-").arg("+").query(&mut conn).unwrap();
        let ids: std::collections::HashSet<String> = entries
            .iter()
            .map(|(_, f)| {
                serde_json::from_str::<Value>(&f[1].1).unwrap()["request_id"].as_str().unwrap().to_string()
            })
            .collect();
        missing = during.iter().chain(&after).filter(|id| !ids.contains(*id)).cloned().collect();
        missing.is_empty()
    })
    .await;
    assert!(arrived.is_some(), "not in the stream after the restart: {missing:?}");
    assert_eq!(metric(&server, up).await, 1.0);
    assert_eq!(metric(&server, r#"fti_prediction_log_dropped_total{sink="stream"}"#).await, 0.0);
    assert!(metric(&server, r#"fti_prediction_log_write_errors_total{sink="stream"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sink_authenticates_with_its_own_password_file() {
    let redis = Redis::start_with(
        &[
            "--requirepass",
            "admin-secret",
            "--user",
            "logger",
            "on",
            ">log-secret",
            "~fti:*",
            "+xadd",
            "+ping",
        ],
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("stream-password");
    std::fs::write(&password, "log-secret\n").unwrap();
    let mut config = with_log(common::example_config());
    config.prediction_log.stream = Some(StreamSinkConfig {
        url: format!("redis://logger@127.0.0.1:{}", redis.port),
        password_file: Some(password),
        ..StreamSinkConfig::default()
    });
    assert!(!format!("{config:?}").contains("log-secret"));
    let server = Server::start(&config).await;
    let sent = burst(&server, "auth", 1, 2, 1).await.len() as f64;
    let written = r#"fti_prediction_log_written_total{sink="stream"}"#;
    assert!(
        eventually(Duration::from_secs(30), async || metric(&server, written).await == sent).await.is_some()
    );
    let mut admin = redis::Client::open(format!("redis://:admin-secret@127.0.0.1:{}", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let len: f64 = redis::cmd("XLEN").arg("fti:predictions:fraud").query(&mut admin).unwrap();
    assert_eq!(len, sent);
}
