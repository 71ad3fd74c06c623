"""The fault-injection suite (issue 10): a package, so that its conftest is `faults.conftest`
and never shadows tests/conftest.py."""
