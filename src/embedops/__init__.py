"""embedops: a vector index kept as a materialized view of its source documents."""

__version__ = "0.1.0"
