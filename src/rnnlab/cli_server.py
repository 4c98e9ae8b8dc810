"""`rnnlab server start`: a team's MLflow tracking server (rnnlab.team_server does the work)."""

from __future__ import annotations

import argparse

from rnnlab.stage import report_errors


@report_errors
def _server_start(args: argparse.Namespace) -> int:
    from rnnlab import team_server

    config = team_server.configure(
        args.db,
        args.artifacts,
        args.host,
        args.port,
        args.auth_db,
        default_permission=args.default_permission,
        workers=args.workers,
        allowed_hosts=args.allowed_hosts,
    )
    return team_server.serve(config)


def add_server_parser(commands: argparse._SubParsersAction) -> None:
    from rnnlab.team_server import ADMIN_PASSWORD_ENV, PERMISSIONS

    server = commands.add_parser(
        "server",
        help="a team's MLflow tracking server (PostgreSQL, proxied artifacts, basic auth)",
        description="README, 'Team set-up'.",
    )
    start = server.add_subparsers(dest="action", required=True).add_parser(
        "start",
        help="run `mlflow server` on a database with basic auth; print its URL; Ctrl-C stops it",
        description=f"The admin's password comes from ${ADMIN_PASSWORD_ENV} (used when the auth database "
        "is new); users and permissions are managed through MLflow's auth API.",
    )
    start.add_argument("--db", required=True, help="postgresql://USER:PASS@HOST:PORT/DB (sqlite:///FILE too)")
    start.add_argument("--artifacts", required=True, help="folder or s3://, gs://... URI for artifacts")
    start.add_argument("--host", default="127.0.0.1", help="address (0.0.0.0: all; default %(default)s)")
    start.add_argument("--port", type=int, default=5000, help="default: %(default)s")
    start.add_argument("--auth-db", help="database of users and permissions (default: --db)")
    start.add_argument(
        "--default-permission", choices=PERMISSIONS, default="READ", help="of users on others' experiments"
    )
    start.add_argument("--workers", type=int, default=2, help="server processes (default: %(default)s)")
    start.add_argument("--allowed-hosts", help="host names clients use, comma-separated (IPs are allowed)")
    start.set_defaults(func=_server_start)
