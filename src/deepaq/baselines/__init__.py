"""Classic quality metrics beside DeePAQ: ViSQOL v3, PEAQ Basic, the 2f-model, and others.

Import the submodule you need (`deepaq.baselines.peaq`, `deepaq.baselines.twof`, ...);
this package imports nothing itself, so `import deepaq.baselines` stays cheap.
"""
