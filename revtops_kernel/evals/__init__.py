"""Evals: a golden set of RevOps questions about the sandbox company, checked without a model
(each gold SQL through the guard against answers derived from the sandbox's ground truth) and
with one (the copilot answers each question; its last result or its prose is matched)."""
