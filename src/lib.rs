//! fti-serve: the online inference pipeline of a feature/training/inference (FTI) system.
//!
//! # Module map
//!
//! Arrows run one way: transports → [`predict`] → ([`observe`], [`registry`], [`features`],
//! [`transform`], [`backend`]). [`app`] and [`cli`] sit on top and wire everything; only
//! they read [`config`].
//!
//! - [`predict`]: the core and the only door transports use. [`predict::Predictor`]
//!   predicts (entity IDs and request values in, named outputs out), infers (raw tensors),
//!   describes what is served ([`predict::describe`]) and moves aliases
//!   ([`predict::manage`]). Every request runs under one wrapper: resolve, deadline,
//!   outcome metrics.
//! - [`registry`]: the model registry directory (`<root>/<model>/<version>/manifest.toml` +
//!   `model.onnx`, `<root>/<model>/state.toml` for aliases), loading a version (checksum,
//!   feature view, backend, output plans, warm-up) and the lock-free snapshot of what is
//!   served, kept in step with the directory.
//! - [`features`]: feature views (what a version was trained on, compiled into a fill
//!   plan), online stores (Redis, in-memory from files), the TTL cache in front, the
//!   per-request fetch, and feature-file readers.
//! - [`transform`]: the on-demand expression language: parse, type-check, compile to
//!   closures, evaluate per row.
//! - [`backend`]: the sync [`backend::Backend`] trait that runs a model on a batch
//!   (tract-onnx with our own tree and SVM engines, and ONNX Runtime through `ort`).
//! - [`http`]: axum routes (`/v1` predict, `/v2` Open Inference Protocol, admin), JSON
//!   DTOs, error-to-status mapping.
//! - [`grpc`]: tonic services (Open Inference Protocol, `fti.v1.PredictionService`) and
//!   error-to-`Status` mapping; served beside HTTP by the same process.
//! - [`oip`]: Open Inference Protocol tensor codecs both transports share.
//! - [`metrics`]: metric names, buckets and the Prometheus registry.
//! - [`observe`]: what the server records of what it serves, off the request path: the
//!   prediction log (files, Redis Streams, exported to Parquet) and drift against each
//!   version's training reference.
//! - [`config`]: the configuration file format, layered (defaults, TOML file,
//!   `FTI__SECTION__KEY` env), and its validation.
//! - [`app`]: wiring: turn config into each module's options, build the shared state,
//!   serve, shut down with a drain.
//! - [`idle`]: the lowest CPU priority for background threads (shadow runs, the
//!   prediction log's writer), so they only take CPU the answers leave idle.
//! - [`connections`]: limits every listener applies to its connections (a cap on open
//!   connections, opening and drain deadlines).
//! - [`cli`]: the commands behind `fti-serve materialize`, `transform` and `models`.
//! - [`secret`]: values that never reach logs.
//!
//! # The path of one request
//!
//! 1. [`http`] decodes `POST /v1/models/fraud/predict` into [`predict::PredictRequest`].
//! 2. [`predict::Predictor`] takes one snapshot of the registry and resolves the alias or
//!    version; the request finishes on that version whatever is promoted meanwhile.
//! 3. The version's [`features::FeatureView`] validates entity keys and request values,
//!    then [`features::FeatureService`] looks up every (feature group, entity) in the
//!    cache and fetches all misses in one store round trip; each group makes its keys and
//!    decodes its values in its layout (native, or Feast's: [`features::feast`]).
//! 4. The view fills each row's frame (the same fill `fti-serve transform` uses offline),
//!    its compiled [`transform::Program`] computes the on-demand features, and the input
//!    vector is assembled in the order the model was trained on.
//! 5. The version's [`backend::Backend`] runs the batch; the version's output plans name
//!    the outputs, and [`http`] encodes the answer.
//! 6. When the request is sampled for the prediction log (or drift is watched), its pieces
//!    go to [`observe`]'s bounded queue; a background thread writes the record.

pub mod app;
pub mod backend;
pub mod cli;
pub mod config;
pub mod connections;
pub mod error;
pub mod features;
pub mod grpc;
pub mod http;
pub mod idle;
pub mod metrics;
pub mod observe;
pub mod oip;
pub mod predict;
pub mod registry;
pub mod secret;
pub mod transform;

pub use error::Error;
