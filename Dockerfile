# wireway: the sensor-ingestion application by default.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# a fixed uid/gid (999) that deploy/kubernetes/ runs as and gives its volume (fsGroup)
RUN pip install --no-cache-dir . && groupadd --system --gid 999 wireway \
    && useradd --system --uid 999 --gid wireway --home-dir /var/lib/wireway wireway \
    && mkdir -p /var/lib/wireway && chown wireway /var/lib/wireway
USER wireway
ENV WIREWAY_DATA_DIR=/var/lib/wireway \
    WIREWAY_HTTP=0.0.0.0:8080
EXPOSE 8080 3001
VOLUME ["/var/lib/wireway"]
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
ENTRYPOINT ["wireway", "run"]
