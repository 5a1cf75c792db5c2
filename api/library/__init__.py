"""library domain: global and personal tags, pieces, and the practice heatmap of a piece."""
