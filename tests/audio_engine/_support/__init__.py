"""Test helpers for the audio engine's tests (synthetic signals and event matching)."""
