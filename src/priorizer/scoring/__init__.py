"""Scoring: from what a portal says about a dataset and its files to a base priority 1-10."""
