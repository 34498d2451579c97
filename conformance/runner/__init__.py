"""The supervisor process of `conformance run`: starts the suite, enforces time limits, journals and salvages results.

Never imports torch (a run must survive a torch that crashes on import). `journal` is also loaded as a pytest
plugin inside the suite process, to record results as they happen.
"""
