"""SYNTHEMPATHY: a reproducible pipeline that turns real stress scenarios into an empathy corpus.

Implements Chen, Shin, Hirschberg (2025), arXiv 2502.17857, as DVC stages; the logic lives
here as small functions, the stages in ``stages/`` only wire files to it.
"""

__version__ = "0.1.0"
