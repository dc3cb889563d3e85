# The service image: `ivr serve` as a non-root user. Set REDIS_URL in production
# (without it the service starts its own embedded Redis, which keeps nothing).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    IVR_GRAPHS_DIR=/app/ivr_graphs
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ivr
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY ivr_graphs ./ivr_graphs
USER ivr
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["ivr"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
