"""One module per DVC stage, run as ``python -m stages.<name>``; each only wires files to the core."""
