"""Checks a user runs, and the harness they share with experiments/."""
