-- MLflow's backend store lives beside Airflow's metadata DB on the same Postgres server.
CREATE DATABASE mlflow OWNER airflow;
-- MLflow's basic-auth app keeps its users and permissions in a database of their own.
CREATE DATABASE mlflow_auth OWNER airflow;
