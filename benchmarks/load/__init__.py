"""Load benchmark of the engine's gRPC server: real-time streams from separate processes,
event delay p50/p99, server CPU and memory per stream, the largest N per core; peers and a
locust scenario (see ``benchmarks/load/README.md``)."""
