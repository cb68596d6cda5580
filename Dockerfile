# The nova-pipeline code location, Dagster webserver and daemon (see docker-compose.yml). Alone, the image's
# instance is SQLite in $DAGSTER_HOME; compose mounts deploy/dagster.yaml (PostgreSQL) and deploy/workspace.yaml.
# pg_dump/pg_restore for backups come from the pgserver wheel (PostgreSQL 16, matching the postgres:16 service).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nova_pipeline ./nova_pipeline
RUN pip install --no-cache-dir .
COPY data/nova.spec.yaml data/generate_nova.py ./data/
COPY workspace.yaml ./
# Named volumes start as copies of these directories, so they belong to the unprivileged user too.
RUN useradd --create-home --uid 1000 nova \
    && mkdir -p "$DAGSTER_HOME" && cp nova_pipeline/orchestration/dagster.yaml "$DAGSTER_HOME"/ \
    && chown -R nova:nova /app/data "$DAGSTER_HOME"
USER nova
EXPOSE 3000
# The Dagster UI; docker-compose.yml runs the daemon and the one-shot sample from this image with their own commands.
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "/app/workspace.yaml"]
