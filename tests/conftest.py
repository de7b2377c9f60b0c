"""Puts tests/ on sys.path (pytest does so for this conftest's folder), so
tests in subfolders import the shared NumPy reference: `from reference import ...`."""
