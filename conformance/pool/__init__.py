"""The rank pool: ranks started once per world size that run registered scenarios one check after another.

The pool's own modules never import torch at import time; the rank processes (worker, scenarios) import it when a
scenario needs it.
"""
