"""Scheduled reports built from verified queries: the weekly pipeline digest (``digest``)."""
