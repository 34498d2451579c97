"""Every value that crosses a process or a file boundary, with its writer and typed reader side by side.

The bottom layer: stdlib only, never imports torch or pytest; imported by every process (supervisor, suite, ranks,
report). A rename here changes the producer and the consumer together; `tests/test_structure.py` pins that nothing
below it is imported from here.
"""
