# Builds the switchboard binary, then runs it on a slim Debian image.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev flite1-dev libopus-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole crate (see .dockerignore): benches, fixtures and templates are part of it.
COPY . .
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libflite1 libopus0 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/switchboard --create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /var/lib/switchboard
ENV SWITCHBOARD_HTTP_ADDR=0.0.0.0:8080 \
    SWITCHBOARD_DATABASE_URL=sqlite:///var/lib/switchboard/switchboard.db \
    SWITCHBOARD_LOG_FORMAT=json
VOLUME ["/var/lib/switchboard"]
EXPOSE 8080 5060/udp
CMD ["switchboard", "serve"]
