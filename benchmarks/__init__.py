"""Reproducible performance runs of tailhook beside named peers (``make bench``)."""
