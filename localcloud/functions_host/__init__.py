"""Local Azure Functions host for Python v1 (function.json) apps; see README.md in this folder."""
