"""The torch environment: build pins (`builds`, stdlib only), the device decision (`device`), API availability (`api`).

Runs in every process. May import torch, but only inside functions: the supervisor and `install-torch` import
this package before torch exists in the env.
"""
