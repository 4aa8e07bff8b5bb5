//! Unloaded versions free their memory: RSS stays bounded over many promote/rollback
//! cycles with only aliased versions resident (every promotion loads, every swap drops).
//! Alone in its own test binary so no other test's allocations blur the reading.
#![allow(clippy::unwrap_used)]

mod common;

use fti_serve::metrics::Metrics;
use fti_serve::registry::lifecycle::{Move, MoveRequest, move_alias};
use fti_serve::registry::{LoadOptions, Registry, RegistryDir, RegistryOptions, Target};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn rss_stays_bounded_over_promotion_cycles() {
    let dir = common::registry_copy();
    let options =
        RegistryOptions { models: vec!["fraud".into()], keep_latest: 0, load: LoadOptions::default() };
    let registry = Registry::new(RegistryDir::new(dir.path()), options, Metrics::new());
    registry.reconcile().unwrap();
    let request = MoveRequest { alias: "production".into(), by: "test".into(), reason: String::new() };
    let cycle = |n: usize| {
        for _ in 0..n {
            for action in [Move::Promote(1), Move::Rollback] {
                move_alias(registry.dir(), "fraud", action, &request, |v| registry.ensure_loaded("fraud", v))
                    .unwrap();
                registry.reconcile().unwrap();
                let snapshot = registry.snapshot();
                assert_eq!(
                    snapshot.models["fraud"].versions.len(),
                    1,
                    "only the aliased version is resident"
                );
                snapshot.resolve("fraud", &Target::production()).unwrap();
            }
        }
    };
    cycle(20);
    let warm = rss_kib();
    cycle(100);
    let after = rss_kib();
    let growth = after.saturating_sub(warm);
    println!("RSS after 20 cycles {warm} KiB, after 120 cycles {after} KiB, growth {growth} KiB");
    // 200 more loads of a 54 KB tree model: a leak of even one model per load would
    // add far more than this bound.
    assert!(growth < 16 * 1024, "RSS grew by {growth} KiB over 100 promote/rollback cycles");
}
