FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nova_pipeline ./nova_pipeline
COPY data/nova.spec.yaml data/generate_nova.py ./data/
COPY workspace.yaml dagster.yaml ./
RUN pip install --no-cache-dir . && mkdir -p /opt/dagster/home && cp dagster.yaml /opt/dagster/home/
ENV DAGSTER_HOME=/opt/dagster/home
