# closedloop as a container: `closedloop serve` with the config mounted at /etc/closedloop.
#   docker build -t closedloop .
#   docker run -d --name closedloop -p 9464:9464 \
#     -v "$PWD/my-setup:/etc/closedloop:ro" -v closedloop-data:/var/lib/closedloop \
#     --env-file secrets.env closedloop
# The config's store.url should point at /var/lib/closedloop (or PostgreSQL), and
# service.host at 0.0.0.0 so /healthz and /metrics are reachable from outside the container.
FROM python:3.11-slim
WORKDIR /opt/closedloop
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY adapters ./adapters
COPY mappings ./mappings
COPY config ./config
# EXTRAS=fleet for the workers and scheduler of deploy/docker-compose.fleet.yml
ARG EXTRAS=postgres
RUN pip install --no-cache-dir -e ".[${EXTRAS}]" \
 && useradd --system --home /var/lib/closedloop closedloop \
 && install -d -o closedloop /var/lib/closedloop
USER closedloop
WORKDIR /var/lib/closedloop
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/healthz').status != 200)"
ENTRYPOINT ["closedloop"]
CMD ["serve", "-c", "/etc/closedloop/config/closedloop.yaml"]
