"""airflow-mlops: an Apache Airflow 3 provider for the production life of tabular ML models."""

from __future__ import annotations

__version__ = "0.1.0"
