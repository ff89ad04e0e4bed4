"""The escape suite's probe (probe.c) and the fixture that builds it into an image."""
