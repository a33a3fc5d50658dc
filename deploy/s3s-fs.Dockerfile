# syntax=docker/dockerfile:1
# s3s-fs (crates.io): the S3 server over a directory that the S3 and scale-out tests run on
# loopback (deploy/s3.sh installs the same version there), as the S3-compatible store of
# deploy/compose.yaml. A single-host store for trying the scale-out topology, not for production:
# point ROADHEX_STORE and AWS_* at a real S3 service there.
FROM rust:1.95-bookworm AS build
ARG S3S_FS_VERSION=0.14.1
RUN cargo install --locked s3s-fs --version "$S3S_FS_VERSION" --features binary --root /opt/s3s

FROM debian:bookworm-slim
COPY --from=build /opt/s3s/bin/s3s-fs /usr/local/bin/s3s-fs
RUN useradd --system --uid 10002 --user-group --no-create-home --shell /usr/sbin/nologin s3s \
 && mkdir /data && chown 10002:10002 /data
USER 10002:10002
EXPOSE 9000
ENTRYPOINT ["s3s-fs"]
CMD ["--host", "0.0.0.0", "--port", "9000", "/data"]
