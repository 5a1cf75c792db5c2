"""Load benchmark of the REST API (locust): ``python -m benchmarks.api.run_api_load``."""
