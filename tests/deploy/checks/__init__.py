"""Checks behind tests/deploy: each returns the problems it finds, so a test can seed a mistake and see it reported."""
