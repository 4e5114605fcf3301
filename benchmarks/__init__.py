"""Benchmarks: ``python -m benchmarks.run [--smoke]`` runs them all (``make bench``).

Each compares against its own baseline in the same run and writes Markdown to
``benchmarks/results/``; ``--smoke`` runs a seconds-long variant and writes nothing.
"""
