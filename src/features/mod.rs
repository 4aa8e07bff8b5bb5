//! Features: what a model version reads ([`view`]), where precomputed values live
//! ([`store`]: [`redis`] over our own multiplexed connection or the redis crate's,
//! [`redis_cluster`], [`memory`]) and in which layout (native, or Feast's: [`feast`]),
//! the cache in front ([`cache`]), the per-request fetch ([`service`]) and feature files
//! ([`files`]).

pub mod cache;
pub mod event_time;
pub mod feast;
pub mod feast_write;
pub mod files;
pub mod memory;
pub mod redis;
pub mod redis_cluster;
mod redis_mux;
pub mod service;
pub mod store;
pub mod value;
pub mod view;

pub use cache::CacheOptions;
pub use service::{FeatureService, FetchedGroups, OnStoreError};
pub use store::OnlineStore;
pub use value::{DType, RequestValue, Value};
pub use view::{FeatureView, FeatureViewSpec};
