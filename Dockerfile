# fti-serve: multi-stage build; the runtime image holds the binary, the example registry
# and config, and runs as a non-root user. Override the registry or config by mounting
# over /srv/fti/models or /srv/fti/config, or with FTI__SECTION__KEY variables.

FROM rust:1.95-slim-bookworm AS build
# The gRPC code is generated at build time by protox (Rust): no protoc to install.
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
# The workspace's second member: the load tool, shipped in the image beside the server.
COPY loadtest/Cargo.toml loadtest/build.rs ./loadtest/
COPY loadtest/src ./loadtest/src
RUN cargo build --release --locked --workspace --bins

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin fti
COPY --from=build /src/target/release/fti-serve /src/target/release/fti-loadtest /usr/local/bin/
COPY models /srv/fti/models
COPY config /srv/fti/config
COPY examples/fraud/data/features /srv/fti/examples/fraud/data/features
WORKDIR /srv/fti
USER 10001
ENV FTI__SERVER__HTTP_ADDR=0.0.0.0:8080 \
    FTI__SERVER__GRPC_ADDR=0.0.0.0:8081 \
    FTI__LOG__FORMAT=json
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s \
    CMD ["fti-serve", "probe", "http://127.0.0.1:8080/health/live"]
ENTRYPOINT ["fti-serve"]
CMD ["serve", "--config", "/srv/fti/config/example.toml"]
