"""Cross-device report: read JUnit files, build the matrix, render it."""
