"""The PySide6 desktop app: document and undo stack, controller, worker threads, views, panels, dialogs,
the main window, the smoke test.
"""
