"""Answering a question: verified queries first, the model around them (``Answerer``), and
the answer collected as a record for notebooks (``AnswerRecord``)."""

from revtops_kernel.answering.answerer import Answerer, Plan
from revtops_kernel.answering.verified_first import VerifiedRun

__all__ = ["Answerer", "Plan", "VerifiedRun"]
