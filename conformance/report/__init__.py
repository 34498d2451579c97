"""Cross-device report: read JUnit files, build the matrix, render it.

Never imports torch (nor pytest): the report runs wherever the JUnit files are, with or without a torch build.
"""
