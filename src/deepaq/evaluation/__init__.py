"""Evaluate quality metrics against listening tests.

    manifest.py   the plain listening-test manifest (CSV) and per-listener aggregation
    loaders.py    ODAQ, SEBASS-DB and generic/webMUSHRA result tables -> stimuli
    metrics.py    every metric behind one interface (pair metrics and FAD), built by name
    embeddings.py backbone frame embeddings for FAD and the NOMAD-style distance
    cache.py      on-disk score cache keyed by metric identity and file content hashes
    runner.py     cached, parallel, fault-tolerant scoring of all stimuli
    stats.py      correlations, bootstrap CIs by item, k-fold by item, Williams/Steiger
    analysis.py   all numbers of a report (tests x levels x mappings)
    report.py     report.md, CSV tables, scatter plots, results.json

The command line is `deepaq evaluate` (deepaq/commands/evaluate.py); see docs/evaluation.md.
"""
