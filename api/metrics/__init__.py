"""metrics domain: the practice metrics time series, its rollups, and the consumer of the
engine's stream summaries."""
