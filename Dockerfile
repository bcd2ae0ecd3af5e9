# syntax=docker/dockerfile:1
# The litellm-impl operator image. CI cannot build images on our machines (no Docker
# engine); build it where one runs:
#   docker build -t ghcr.io/aigateway-rs/litellm-impl:dev .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p litellm-impl-cli --bin litellm-impl \
    && cp target/release/litellm-impl /litellm-impl

# distroless: no shell, no package manager; nonroot user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /litellm-impl /usr/local/bin/litellm-impl
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/litellm-impl"]
CMD ["run"]
