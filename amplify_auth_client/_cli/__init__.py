"""``auth-cli``, the token management CLI, in four parts:

* ``_parser``: the command line (argparse, stdlib);
* ``_settings``: where the server and the admin token come from;
* ``_commands``: what each command does, as plain functions over an
  :class:`~amplify_auth_client.AuthClient` that return data (tests call them too);
* ``_render``: how results look, with rich, the only module importing it,
  loaded only when the output is not ``--json``;

with ``_main`` tying them together and ``_errors`` holding the exit codes.
The entry point is :func:`amplify_auth_client.cli.main`.
"""

from amplify_auth_client._cli._main import main

__all__ = ["main"]
