# dockhook in a FROM scratch image: one static binary, nothing else.
#
# The binary is built on the host, so no Rust base image is needed:
#
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu
#   docker build -t dockhook .
#
# (scripts/build-image.sh does both.)
FROM scratch
# On PATH, so `docker exec dockhook dockhook check-config --show-token`
# prints the webhook URL.
COPY target/x86_64-unknown-linux-gnu/release/dockhook /usr/local/bin/dockhook
# Registry logins: mount your ~/.docker read-only on /root/.docker.
ENV PATH=/usr/local/bin \
    DOCKHOOK_LISTEN=0.0.0.0:8080 \
    DOCKHOOK_DATA_DIR=/data \
    HOME=/root
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s CMD ["dockhook", "healthcheck"]
ENTRYPOINT ["dockhook"]
CMD ["serve"]
