"""From files to token windows: sequences, intervals, labels, datasets, variants (imports lab only)."""
