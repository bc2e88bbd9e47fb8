"""Metrics logging and plots."""
