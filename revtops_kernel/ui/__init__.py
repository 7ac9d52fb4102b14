"""Notebook front ends: the ipywidgets chat panel, its cards, and the IPython magics."""
