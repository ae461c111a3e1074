# The Airflow image with this provider installed from the lock (every component imports it:
# api-server, scheduler, dag-processor, triggerer, workers), and mlflow[auth] for the basic-auth tracking server.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11

COPY --chown=airflow:root constraints.txt pyproject.toml README.md /opt/airflow-mlops/
COPY --chown=airflow:root airflow_mlops /opt/airflow-mlops/airflow_mlops
RUN pip install --no-cache-dir --constraint /opt/airflow-mlops/constraints.txt \
        "/opt/airflow-mlops" "apache-airflow-providers-celery" "psycopg2-binary" "mlflow[auth]"
