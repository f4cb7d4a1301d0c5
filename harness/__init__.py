"""harness: a distributed benchmark harness for deep-learning experiments.

config -> sweep (Ray Tune) -> trial (Accelerate) -> store (Parquet) -> report.
"""

__version__ = "0.1.0"
