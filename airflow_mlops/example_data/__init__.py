"""Synthetic, deterministic customer-churn data for the demo, the tests and the benchmarks."""

from __future__ import annotations

from pathlib import Path

SPEC_PATH = Path(__file__).with_name("churn_spec.yaml")
