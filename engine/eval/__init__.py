"""Scoring: the challenge metrics (DSC, NSD) and the evaluation of ground-truth cases.
"""
