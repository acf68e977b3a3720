"""Log in to and out of registries (the ``login`` / ``logout`` commands)

Credentials go to docker's ``config.json`` (``$DOCKER_CONFIG``, default ``~/.docker``) or the
credential helper it names, so docker and dockyard share logins.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb, shown_as

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

_PLAINTEXT_WARNING = """
WARNING! Your credentials are stored unencrypted in '{path}'.
Configure a credential helper to remove this warning. See
https://docs.docker.com/go/credential-store/
"""


def build_parser(sub: Any) -> None:
    from dockyard.cli.distribution import add_registry_flags

    p = add_verb(sub, "login", cmd_login, "Authenticate to a registry. Defaults to Docker Hub if no server is specified.")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password or Personal Access Token (PAT)")
    p.add_argument("--password-stdin", action="store_true", help="Take the Password or Personal Access Token (PAT) from stdin")
    add_registry_flags(p)

    p = add_verb(sub, "logout", cmd_logout, "Log out from a registry. If no server is specified, the default is defined by the daemon.")
    p.add_argument("server", nargs="?", metavar="SERVER")


def _interactive(prompt: str, secret: bool) -> str:
    from dockyard.errors import InvalidArgument

    if not sys.stdin.isatty():
        raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
    if secret:
        import getpass

        return getpass.getpass(prompt)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def cmd_login(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import InvalidArgument

    svc = ctx.client.distribution
    svc.configure(args.insecure_registry)
    password = args.password
    if password is not None and args.password_stdin:
        raise shown_as(InvalidArgument("conflicting options: cannot specify both --password and --password-stdin"), "")
    if args.password_stdin:
        if not args.username:
            raise shown_as(InvalidArgument("the --password-stdin option requires --username to be set"), "")
        password = sys.stdin.read()
        password = password[:-1] if password.endswith("\n") else password
        password = password[:-1] if password.endswith("\r") else password
    elif password is not None:
        ctx.warn("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    username = args.username
    if not username and not password:
        stored = svc.stored_login(args.server)
        if stored is not None and stored.username and stored.password:
            ctx.warn(f"Authenticating with existing credentials... [Username: {stored.username}]")
            username, password = stored.username, stored.password
    if not username:
        username = _interactive("Username: ", secret=False)
    if not password:
        password = _interactive("Password: ", secret=True)
    if not username:
        raise InvalidArgument("Username is required")
    if not password:
        raise InvalidArgument("Password is required")
    from dockyard.cli.common import DAEMON_PREFIX
    from dockyard.errors import DockyardError

    try:
        result = svc.login(args.server, username, password)
    except DockyardError as exc:  # docker's daemon checks the credentials with the registry
        raise shown_as(exc, DAEMON_PREFIX) from None
    if not result.helper:
        ctx.warn(_PLAINTEXT_WARNING.format(path=result.stored_in))
    ctx.print("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.distribution.hosts import credentials_key

    domain, _ = ctx.client.distribution.logout(args.server)
    ctx.print(f"Removing login credentials for {credentials_key(domain)}")
    return 0
