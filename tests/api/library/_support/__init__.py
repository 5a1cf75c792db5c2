"""Helpers of the library tests."""
