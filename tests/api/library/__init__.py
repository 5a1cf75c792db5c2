"""Tests of the library domain: tags, pieces, the heatmap."""
