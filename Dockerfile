# The service image: `ivr serve` as a non-root user (uid 10001), without the embedded
# Redis (no redis-server, no 'embedded' extra): REDIS_URL is required, and without it the
# service stops at start with one line saying so (docs/deploy.md).
#
# The base image is pinned by digest (python:3.11-slim, the multi-platform index), so a
# build is the same until someone moves the pin on purpose. To move it:
#   docker buildx imagetools inspect python:3.11-slim    # "Digest: sha256:..."
# and replace the digest below (or pass --build-arg PYTHON_IMAGE=...@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# Wheels of the service and of its dependencies (no extras).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json \
    IVR_GRAPHS_DIR=/app/ivr_graphs
RUN groupadd --system --gid 10001 ivr \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin ivr
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/bird_ivr-*.whl \
 && rm -rf /wheels
COPY ivr_graphs ./ivr_graphs
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["ivr"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
