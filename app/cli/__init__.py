"""The ``boxseg`` command line: one module per subcommand (``models``, ``challenge`` = eval/infer,
``segment``, ``files`` = info/convert, ``desktop`` = app, ``batch``), shared options in ``common``,
the parser and entry point in ``main``. No Qt (an import-linter contract).
"""
