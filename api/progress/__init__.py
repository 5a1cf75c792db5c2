"""Practice progress: pure rules over sessions (minutes, trends, clean tempo, timing heat maps),
recommendations, and dependency-free SVG charts. No database, no HTTP."""
