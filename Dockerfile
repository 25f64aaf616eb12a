# Palisade agent image: build with the Rust toolchain, run on a small Debian
# with what the dataplane needs (nft for transactions, ip for pod routes).
#   docker build -t palisade:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p palisade \
 && strip target/release/palisade

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/palisade /usr/local/bin/palisade
USER 0
ENTRYPOINT ["/usr/local/bin/palisade"]
CMD ["agent", "--kubernetes"]
