"""Widgets that show an image: the slice view.
"""
