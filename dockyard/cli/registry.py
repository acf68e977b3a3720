"""Run and manage an OCI registry

``dockyard registry serve`` runs dockyard's own registry (OCI distribution-spec v1.1, Docker token
auth); the other verbs maintain one: garbage collection and retention (both safe while it serves),
users in its htpasswd file, and checking a configuration file before deploying it.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import Parser, add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context
    from dockyard.registry.config import Config


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def _load_config(args: argparse.Namespace) -> "Config":
    """The config file (if any) with command-line flags taking precedence."""
    from dockyard.registry import config as cfgmod

    cfg = cfgmod.load(args.config) if getattr(args, "config", None) else cfgmod.Config()
    if getattr(args, "addr", None):
        cfgmod.split_addr(args.addr)
        cfg.addr = args.addr
    if getattr(args, "storage", None):
        cfg.storage.kind = "filesystem"
        cfg.storage.root = args.storage
    if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
        if not (args.tls_cert and args.tls_key):
            from dockyard.errors import InvalidArgument

            raise InvalidArgument("--tls-cert and --tls-key go together")
        cfg.tls_cert, cfg.tls_key = args.tls_cert, args.tls_key
    if cfg.storage.kind == "filesystem" and not cfg.storage.root:
        from dockyard.state import StateRoot

        cfg.storage.root = str(StateRoot().dir("registry"))
    return cfg


def _storage_flags(p: Parser) -> None:
    p.add_argument("--config", metavar="FILE", help="Registry configuration file (YAML)")
    p.add_argument("--storage", metavar="DIR", help="Filesystem storage directory "
                   "(default: <root>/registry, or the config's storage)")


def serve(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.registry.server import RegistryServer

    server = RegistryServer(_load_config(args))
    ctx.warn(f"dockyard registry listening on {server.url} (storage {server.store.driver.describe()})")
    server.serve_forever()
    return 0


def gc(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.registry import gc as gcmod
    from dockyard.registry.server import open_store

    cfg = _load_config(args)
    store = open_store(cfg)
    report = gcmod.collect(store, dry_run=args.dry_run, upload_max_age=cfg.storage.upload_max_age,
                           grace=cfg.gc_upload_grace if args.grace is None else args.grace)
    verb = "Would delete" if args.dry_run else "Deleted"
    if not args.quiet:
        for digest, size in report.blobs:
            ctx.print(f"{verb} blob {digest} ({_size(size)})")
        for repo, digest in report.links:
            ctx.print(f"{verb} link {repo}@{digest}")
        for upload in report.uploads:
            ctx.print(f"{verb} abandoned upload {upload}")
    ctx.print(f"{'Would free' if args.dry_run else 'Freed'} {_size(report.bytes_freed)} in "
              f"{len(report.blobs)} blobs; {report.kept_blobs} blobs in use")
    return 0


def retention(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.registry import retention as retmod
    from dockyard.registry.server import open_store

    cfg = _load_config(args)
    store = open_store(cfg)
    actions = retmod.plan(store, cfg)
    skipped = [] if args.dry_run else retmod.apply(store, cfg, actions)
    verb = "Would delete" if args.dry_run else "Deleted"
    for a in actions:
        if a in skipped:
            continue
        ref = f"{a.repository}:{a.reference}" if a.kind == "tag" else f"{a.repository}@{a.reference}"
        ctx.print(f"{verb} {a.kind} {ref} ({a.reason})")
    done = len(actions) - len(skipped)
    ctx.print(f"{verb} {done} item(s)" + (f"; {len(skipped)} changed meanwhile and were kept" if skipped else "")
              + ("" if args.dry_run else "; run 'dockyard registry gc' to free their blobs"))
    return 0


def check_config(args: argparse.Namespace, ctx: "Context") -> int:
    import os

    from dockyard.errors import InvalidArgument
    from dockyard.registry.auth import read_htpasswd
    from dockyard.registry.server import check_exposure

    cfg = _load_config(args)
    check_exposure(cfg)
    for label, path in (("http.tls.certificate", cfg.tls_cert), ("http.tls.key", cfg.tls_key),
                        ("auth.token.key", cfg.auth.token.key)):
        if path and not os.path.isfile(path):
            raise InvalidArgument(f"{label}: {path} does not exist")
    users = set(cfg.auth.users)
    if cfg.auth.htpasswd:
        users |= set(read_htpasswd(cfg.auth.htpasswd))
    for i, rule in enumerate(cfg.repositories):
        for g in rule.grants:
            unknown = sorted(g.users - users - {"*"})
            if unknown:
                ctx.warn(f"warning: repositories[{i}] grants to unknown user {unknown[0]!r}")
            unknown_roles = sorted(g.roles - set(cfg.auth.roles) - {r for u in cfg.auth.users.values() for r in u.roles})
            if unknown_roles:
                ctx.warn(f"warning: repositories[{i}] grants to role {unknown_roles[0]!r}, which has no members")
    auth = "open (no credentials)" if cfg.open_access else f"{cfg.auth.scheme}, {len(users)} user(s)"
    storage = cfg.storage.root if cfg.storage.kind == "filesystem" else f"s3://{cfg.storage.s3.get('bucket')}"
    ctx.print(f"configuration OK: listen {cfg.addr}{' (TLS)' if cfg.tls_cert else ''}, storage "
              f"{cfg.storage.kind} {storage}, auth {auth}, {len(cfg.repositories)} repository rule(s)")
    return 0


def _htpasswd_path(args: argparse.Namespace) -> str:
    from dockyard.errors import InvalidArgument

    if args.htpasswd:
        return args.htpasswd
    if args.config:
        from dockyard.registry import config as cfgmod

        cfg = cfgmod.load(args.config)
        if cfg.auth.htpasswd:
            return cfg.auth.htpasswd
        raise InvalidArgument(f"{args.config} has no auth.htpasswd file: add 'htpasswd: users.htpasswd' "
                              "under auth, or pass --htpasswd FILE")
    raise InvalidArgument("pass --config FILE (with auth.htpasswd) or --htpasswd FILE")


def _read_password(args: argparse.Namespace, ctx: "Context") -> str:
    from dockyard.errors import InvalidArgument

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        ctx.warn("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
        password = args.password
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Confirm password: ") != password:
            raise InvalidArgument("passwords do not match")
    else:
        raise InvalidArgument("no password given: use --password-stdin")
    if not password:
        raise InvalidArgument("empty password")
    return password


def user_add(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import InvalidArgument
    from dockyard.registry.auth import hash_password, read_htpasswd, write_htpasswd

    if not args.name or ":" in args.name or any(c.isspace() for c in args.name):
        raise InvalidArgument(f"invalid user name {args.name!r}")
    path = _htpasswd_path(args)
    users = read_htpasswd(path)
    existed = args.name in users
    users[args.name] = hash_password(_read_password(args, ctx), rounds=args.cost)
    write_htpasswd(path, users)
    ctx.print(f"{'Updated' if existed else 'Added'} user {args.name} in {path}")
    return 0


def user_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import NotFound
    from dockyard.registry.auth import read_htpasswd, write_htpasswd

    path = _htpasswd_path(args)
    users = read_htpasswd(path)
    for name in args.names:
        if name not in users:
            raise NotFound(f"no such user: {name}")
        del users[name]
    write_htpasswd(path, users)
    for name in args.names:
        ctx.print(name)
    return 0


def user_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.registry.auth import read_htpasswd

    cfg = None
    if args.config:
        from dockyard.registry import config as cfgmod

        cfg = cfgmod.load(args.config)
    names: dict[str, str] = {}
    if args.htpasswd or (cfg and cfg.auth.htpasswd):
        for n in read_htpasswd(_htpasswd_path(args)):
            names[n] = "htpasswd"
    if cfg:
        for n in cfg.auth.users:
            names[n] = "config"
    ctx.print(f"{'USER':<24}{'SOURCE':<10}ROLES")
    for n in sorted(names):
        roles: set[str] = set()
        if cfg:
            roles = set(cfg.auth.users[n].roles) if n in cfg.auth.users else set()
            roles |= {r for r, members in cfg.auth.roles.items() if n in members}
            if n in cfg.auth.users and cfg.auth.users[n].admin:
                roles.add("admin")
        ctx.print(f"{n:<24}{names[n]:<10}{','.join(sorted(roles))}")
    return 0


def _user_file_flags(p: Parser) -> None:
    p.add_argument("--config", metavar="FILE", help="Registry config whose auth.htpasswd file to edit")
    p.add_argument("--htpasswd", metavar="FILE", help="htpasswd file (bcrypt) to edit directly")


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "serve", serve, "Run the registry server")
    p.add_argument("--addr", metavar="HOST:PORT", help='Listen address (default "127.0.0.1:5000")')
    _storage_flags(p)
    p.add_argument("--tls-cert", metavar="FILE", help="TLS certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")

    p = add_verb(sub, "gc", gc, "Delete blobs no manifest needs (safe while serving)")
    _storage_flags(p)
    p.add_argument("--dry-run", action="store_true", help="Only list what would be deleted")
    p.add_argument("--grace", type=float, metavar="SECONDS",
                   help="Keep blobs added less than this long ago (default: gc.upload_grace, 1h)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only print the summary")

    p = add_verb(sub, "retention", retention, "Apply the retention policies of the config")
    _storage_flags(p)
    p.add_argument("--dry-run", action="store_true", help="Only list what would be deleted")

    p = add_verb(sub, "check-config", check_config, "Check a registry configuration file")
    p.add_argument("--config", metavar="FILE", required=True, help="Registry configuration file (YAML)")

    user_parser = add_verb(sub, "user", lambda a, c: user_parser.print_help(), "Manage registry users")
    users = user_parser.add_subparsers(dest="user_verb", metavar="COMMAND", parser_class=Parser)
    q = add_verb(users, "add", user_add, "Add a user or change their password")
    q.add_argument("name", metavar="NAME")
    _user_file_flags(q)
    q.add_argument("--password-stdin", action="store_true", help="Read the password from stdin")
    q.add_argument("-p", "--password", help="Password (prefer --password-stdin)")
    q.add_argument("--cost", type=int, default=12, help="bcrypt cost (default 12)")
    q = add_verb(users, "rm", user_rm, "Remove users", aliases=["remove"])
    q.add_argument("names", metavar="NAME", nargs="+")
    _user_file_flags(q)
    q = add_verb(users, "ls", user_ls, "List users", aliases=["list"])
    _user_file_flags(q)
