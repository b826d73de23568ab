"""Shared by every room of the engine: typed errors, progress/stop callbacks, durable file writes, the
platform (cores, bundled and user folders), a description of the machine. Imports nothing of ours.
"""
