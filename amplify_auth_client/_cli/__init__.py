"""``auth-cli``, the token management CLI:

* ``_parser``: the command line (argparse, stdlib);
* ``_settings``: where the server and the admin token come from;
* ``_commands``: what each command does, as functions from the parsed
  arguments and an :class:`~amplify_auth_client.AuthClient` to a result;
* ``_views``: what each result shows, as text and rows;
* ``_render``: those rows drawn with rich, the only module importing it,
  loaded only when the output is not ``--json`` and rich is installed;
* ``_plain``: the same rows as plain aligned text, without rich;

with ``_main`` tying them together and ``_errors`` holding the exit codes.
The entry point is :func:`amplify_auth_client.cli.main`.
"""

from amplify_auth_client._cli._main import main

__all__ = ["main"]
