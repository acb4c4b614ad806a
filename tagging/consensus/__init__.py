"""Consensus from the crowd's votes: pure computation on numpy arrays, no Django.

labels.py (tile labels), buildings.py (buildings from point marks), dates.py
(destruction windows), simulate.py (a crowd with known truth for tests and
bench/consensus).
"""
