"""Dagster-free logic: plain functions over plain data."""
