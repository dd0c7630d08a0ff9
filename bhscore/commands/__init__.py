"""Subcommands of ``bhscore``: each module defines ``register(subparsers, common)``.

``common`` is a parent parser holding the shared options (``--settings``); pass it as
``subparsers.add_parser(name, parents=[common], help=...)``. Set the handler with
``parser.set_defaults(func=handler)``; ``handler(args)`` returns an exit code or None.
Raise :class:`bhscore.errors.UserError` for errors the user can fix (printed without a traceback).
"""
