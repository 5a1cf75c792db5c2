"""Gamification: points, streaks, achievements, challenges, leaderboards and reputation.

The business rules live in :mod:`api.gamification.rules` (pure functions, no I/O)."""
