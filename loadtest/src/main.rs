//! `fti-loadtest`: checks that a deployment of fti-serve meets its latency SLA.
//!
//! How a run flows:
//!
//! - `cli` parses the flags into a [`cli::Plan`].
//! - `corpus` reads the request corpus (JSONL) and draws entity IDs (uniform or Zipf).
//! - `target` pre-encodes one ring of requests for the chosen API (HTTP predict, gRPC
//!   predict, OIP infer over HTTP or gRPC) and sends them over a bounded set of connections.
//! - `drive` offers load: open loop at a fixed rate, with latency measured from each
//!   request's *scheduled* send time so a stalled server cannot hide its queue
//!   (coordinated omission); closed loop at fixed concurrency; or steps of rising rate.
//! - `record` keeps HDR histograms (whole run and per interval), errors by kind and the
//!   model versions that answered, and notices promotions from those versions.
//! - `sla`, `report` and `plot` judge, summarise (terminal, JSON) and draw the run.

mod cli;
mod corpus;
mod drive;
mod plot;
mod record;
mod report;
mod sla;
mod target;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let plan = match cli::Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("fti-loadtest: {e:#}");
            return ExitCode::from(1);
        }
    };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(plan.threads).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("fti-loadtest: cannot start the runtime: {e}");
                return ExitCode::from(1);
            }
        };
    match runtime.block_on(drive::run(&plan)) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("fti-loadtest: {e:#}");
            ExitCode::from(1)
        }
    }
}
