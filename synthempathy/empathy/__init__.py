"""EPITOME empathy scorer (Sharma, Miner, Atkins, Althoff, EMNLP 2020) for (seeker post, response)
pairs: ER emotional reactions, IP interpretations, EX explorations, each rated 0 (none), 1 (weak)
or 2 (strong).

- ``data``: the annotation files, checked, joined into one row per pair; held-out posts.
- ``encoder``: the shipped model, a fine-tuned all-MiniLM-L6-v2 pair encoder with three heads.
- ``features``, ``baseline``: the previous scorer (logistic regressions), kept for comparison.
- ``cv``: grouped cross-validation of all systems, and the reliability (calibration) table.
- ``store``: the fitted scorer as safetensors + JSON, loaded without running code.
- ``scorer``: scoring pairs and records, and summaries.
"""
