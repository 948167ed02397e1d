"""seq2epi: predict histone marks from DNA sequence and draw epigenome maps of rice varieties."""

__version__ = "0.1.0"
