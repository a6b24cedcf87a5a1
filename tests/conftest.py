"""Shared pytest configuration. Fixtures for real servers live in the modules they serve."""
