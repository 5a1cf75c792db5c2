"""Test helpers for the mpt tests (worker processes for the durable queue)."""
