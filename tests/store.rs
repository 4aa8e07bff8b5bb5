//! The online store: Redis outage policies, the cache in front, and the materialize sink.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Redis, Server, golden, materialize_example, redis_config};
use fti_serve::config::StoreErrorPolicy;
use fti_serve::features::files::GroupSchema;
use redis::Commands;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_requests_and_readiness_then_recovers() {
    let mut redis = Redis::start();
    materialize_example(&redis).await;
    let mut config = redis_config(&redis);
    config.store.redis.health_interval_ms = 50;
    config.cache.ttl_ms.clear();
    let server = Server::start(&config).await;
    let request = golden("fraud", 1)[0].request.clone();
    let (status, _) = server.post("/v1/models/fraud/versions/1/predict", &request).await;
    assert_eq!(status, 200);

    redis.stop();
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &request).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("store_unavailable")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("online feature store unavailable"), "{body}");
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"]["up"], false);
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("fti_store_errors_total{kind="), "{metrics}");
    assert!(metrics.contains("fti_store_up 0"), "{metrics}");
    assert!(metrics.contains("outcome=\"store_unavailable\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_policy_serves_through_an_outage() {
    let mut redis = Redis::start();
    let mut config = redis_config(&redis);
    config.store.on_error = StoreErrorPolicy::Defaults;
    config.cache.ttl_ms.clear();
    let server = Server::start(&config).await;
    redis.stop();
    let request = golden("fraud", 1)[0].request.clone();
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["missing_features"].as_array().unwrap().len() >= 2, "{body}");
    assert!(body["outputs"]["probability"].is_f64(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_decides_whether_updates_are_seen() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let request = golden("fraud", 1)[0].request.clone();
    let card = request["entities"]["cc_num"].as_str().unwrap().to_string();
    let key = format!("fti:card_profile:{card}");
    let home_before: String = redis.conn().hget(&key, "home_lat").unwrap();
    let mut with_features = request.clone();
    with_features["return_features"] = json!(true);
    let predict = |server: &Server| {
        let body = with_features.clone();
        let url = server.url("/v1/models/fraud/versions/1/predict");
        let http = server.http.clone();
        async move { http.post(url).json(&body).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };

    // TTL 0: every request reads Redis, so an update shows at once.
    let mut config = redis_config(&redis);
    config.cache.ttl_ms.clear();
    config.cache.default_ttl_ms = 0;
    let server = Server::start(&config).await;
    let first = predict(&server).await;
    let _: () = redis.conn().hset(&key, "home_lat", "-33.9").unwrap();
    let second = predict(&server).await;
    assert_ne!(first["outputs"], second["outputs"], "TTL 0 must see the update");
    let _: () = redis.conn().hset(&key, "home_lat", &home_before).unwrap();
    drop(server);

    // A long TTL: the first answer is cached; the update is not seen.
    let mut config = redis_config(&redis);
    config.cache.ttl_ms.insert("card_profile".into(), 600_000);
    let server = Server::start(&config).await;
    let first = predict(&server).await;
    let _: () = redis.conn().hset(&key, "home_lat", "-33.9").unwrap();
    let second = predict(&server).await;
    assert_eq!(first["outputs"], second["outputs"], "cached card_profile must be served");
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains("fti_feature_cache_lookups_total{group=\"card_profile\",result=\"hit\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_round_trips_and_names_bad_rows() {
    let redis = Redis::start();
    materialize_example(&redis).await;

    // Every row and value of the CSV is in Redis as written.
    let csv_path = common::feature_file("card_activity", "csv");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let mut conn = redis.conn();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let key = format!("fti:card_activity:{}", &record[0]);
        let stored: std::collections::HashMap<String, String> = conn.hgetall(&key).unwrap();
        for (name, cell) in header.iter().zip(record.iter()).skip(1) {
            match stored.get(name) {
                Some(v) => {
                    let (a, b) = (v.parse::<f64>().unwrap(), cell.parse::<f64>().unwrap());
                    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{key} {name}: {v} vs {cell}");
                }
                None => assert!(cell.is_empty(), "{key} {name} missing, file has {cell:?}"),
            }
        }
        rows += 1;
    }
    assert!(rows >= 100, "{rows}");

    // A file with a bad value in row 3: rows 1-2 are written, row 3 not at all.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "cc_num,txn_count_24h,amount_avg_30d\nA1,1,10.5\nA2,2,20\nA3,3,abc\nA4,4,40\n")
        .unwrap();
    let schema = GroupSchema {
        keys: vec!["cc_num".into()],
        dtypes: [
            ("txn_count_24h".to_string(), fti_serve::features::DType::Int),
            ("amount_avg_30d".to_string(), fti_serve::features::DType::Float),
        ]
        .into_iter()
        .collect(),
        feast: None,
    };
    let mut args = fti_serve::cli::materialize::MaterializeArgs {
        group: "test_group".into(),
        file: bad.clone(),
        redis_url: redis.url(),
        prefix: "fti:".into(),
        keys: None,
        batch_size: 500,
        timestamp_column: "event_timestamp".into(),
        keep_going: false,
        progress: false,
    };
    let err = fti_serve::cli::materialize::run(&args, schema.clone()).await.unwrap_err().to_string();
    assert!(err.contains("bad.csv row 3, column `amount_avg_30d`"), "{err}");
    assert!(err.contains("expected a number, got \"abc\""), "{err}");
    assert!(err.contains("2 rows written"), "{err}");
    let exists = |k: &str| -> bool { redis.conn().exists(format!("fti:test_group:{k}")).unwrap() };
    assert!(exists("A1") && exists("A2"));
    assert!(!exists("A3") && !exists("A4"));

    // --keep-going skips the bad row and writes the rest.
    args.keep_going = true;
    let report = fti_serve::cli::materialize::run(&args, schema).await.unwrap();
    assert_eq!(report.written, 3);
    assert_eq!(report.skipped.len(), 1);
    assert!(exists("A4") && !exists("A3"));
}

/// Many requests at once on the builtin client's one connection (their commands written
/// together, their replies read back in order): each gets its own hash's values, absent
/// keys and fields are told apart, and after a Redis restart requests are served again on
/// a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_client_answers_each_request_its_own_replies() {
    use fti_serve::features::OnlineStore;
    use fti_serve::features::redis::{RedisOptions, RedisStore};
    use fti_serve::features::store::Lookup;
    use std::sync::Arc;
    use std::time::Duration;

    let mut redis = Redis::start();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    for i in 0..200 {
        let _: () =
            conn.hset_multiple(format!("k{i}"), &[("a", i.to_string()), ("b", format!("v{i}"))]).unwrap();
    }
    let options =
        RedisOptions { url: redis.url(), password: None, ca_pem: None, timeout: Duration::from_secs(5) };
    let store = Arc::new(RedisStore::new(&options, true).unwrap());
    let fields = vec![b"a".to_vec(), b"missing".to_vec(), b"b".to_vec()];
    let ask = |store: Arc<RedisStore>, i: usize, fields: Vec<Vec<u8>>| async move {
        // Two lookups per request, as a request for two feature groups: its own key, and
        // one that does not exist.
        let lookups = [
            Lookup { key: format!("k{i}").into_bytes(), fields: &fields },
            Lookup { key: format!("absent{i}").into_bytes(), fields: &fields },
        ];
        store.get(&lookups).await
    };
    let tasks: Vec<_> = (0..200).map(|i| tokio::spawn(ask(Arc::clone(&store), i, fields.clone()))).collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let rows = task.await.unwrap().unwrap();
        let own = vec![Some(i.to_string().into_bytes()), None, Some(format!("v{i}").into_bytes())];
        assert_eq!(rows, vec![Some(own), Some(vec![None, None, None])], "request {i}");
    }

    // Requests that give up part way (their deadline), dropped after 1 to 4 polls: the one
    // holding the connection while it writes or reads, and those queued behind it. The
    // others still get their own replies, and the connection serves on.
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let asked = ask(Arc::clone(&store), i % 200, fields.clone());
            tokio::spawn(async move {
                let mut asked = Box::pin(asked);
                let mut polls = 0;
                std::future::poll_fn(|cx| {
                    polls += 1;
                    match asked.as_mut().poll(cx) {
                        std::task::Poll::Ready(rows) => std::task::Poll::Ready(Some(rows)),
                        std::task::Poll::Pending if i % 3 == 0 && polls > i % 4 => {
                            std::task::Poll::Ready(None)
                        }
                        std::task::Poll::Pending => std::task::Poll::Pending,
                    }
                })
                .await
            })
        })
        .collect();
    let mut answered = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let Some(rows) = task.await.unwrap() else { continue };
        let i = i % 200;
        let own = vec![Some(i.to_string().into_bytes()), None, Some(format!("v{i}").into_bytes())];
        assert_eq!(rows.unwrap(), vec![Some(own), Some(vec![None, None, None])], "request {i}");
        answered += 1;
    }
    assert!(answered >= 200, "only {answered} of the requests that waited were answered");
    let own = vec![Some(b"3".to_vec()), None, Some(b"v3".to_vec())];
    assert_eq!(
        ask(Arc::clone(&store), 3, fields.clone()).await.unwrap(),
        vec![Some(own), Some(vec![None, None, None])]
    );

    redis.restart();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let _: () = conn.hset_multiple("k7", &[("a", "7"), ("b", "v7")]).unwrap();
    // The connection Redis closed fails (at most the requests in flight on it), then a new
    // one serves; the store's own health check is not needed for it.
    let mut answered = None;
    for _ in 0..50 {
        if let Ok(rows) = ask(Arc::clone(&store), 7, fields.clone()).await {
            answered = Some(rows);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let own = vec![Some(b"7".to_vec()), None, Some(b"v7".to_vec())];
    assert_eq!(
        answered.expect("served again after the restart"),
        vec![Some(own), Some(vec![None, None, None])]
    );
}
