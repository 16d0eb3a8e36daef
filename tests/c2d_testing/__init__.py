"""Helpers shared by the test trees (importable because pyproject puts tests/ on pythonpath)."""
