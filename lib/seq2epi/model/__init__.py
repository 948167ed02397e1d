"""The Nucleic Transformer, its training, pretraining and inference (imports lab and data)."""
