"""Evals: a golden set of RevOps questions about the sandbox company, checked without a model
(each gold SQL through the guard against answers derived from the sandbox's ground truth) and
with one (the copilot answers each question; its last result or its prose is matched)."""

# The company the golden set is written about (its answers are derived for any scale and seed,
# these are the defaults): 5 reps, ≈500 accounts, ≈900 deals, ≈5,000 activities; it syncs in
# a few seconds. Light constants here, so that building the CLI parser imports nothing heavy.
EVAL_SCALE = 0.1
EVAL_SEED = 1
EVAL_ORG = "eval"
