"""`cx-assistant keys create | list | revoke`: the key store under CX_DATA_DIR, managed directly
(whoever can write the data dir needs no key; the first admin key is made here).

A running server reads the store on every request, so a created or revoked key takes effect
at once, without a restart.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from assistant.cli.app import JsonOpt, _run, app

keys_app = typer.Typer(
    help="API keys scoped to collections: create (the secret is printed once), list, revoke.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _store() -> Any:
    from assistant.keys import KeyStore
    from assistant.settings import load_settings

    return KeyStore(_run(load_settings).data_dir)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Unique name, shown in the audit log.")],
    read: Annotated[str, typer.Option(
        "--read", help="Collections it may read, comma-separated; patterns like 'client-*' "
        "or '*' allowed.")],
    write: Annotated[str, typer.Option(
        "--write", help="Collections it may upload to and delete from (same form).")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="May manage keys over HTTP.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its secret: the only time it is shown (only a digest is kept).

    The secret alone goes to stdout (`SECRET=$(cx-assistant keys create ...)` works); what
    the key may do goes to stderr.
    """
    store = _store()
    record, secret = _run(lambda: store.create(name, read, write, admin))
    if as_json:
        typer.echo(json.dumps({**record.public(), "secret": secret}))
        return
    typer.echo(f"created key '{record.name}': read {', '.join(record.read)}; write "
               f"{', '.join(record.write) or '(none)'}; admin {'yes' if record.admin else 'no'}."
               " Its secret follows, shown this once:", err=True)
    typer.echo(secret)


@keys_app.command("list")
def list_keys(as_json: JsonOpt = False) -> None:
    """Every key with its scopes, admin flag, times and status; never a secret."""
    records = _store().records()
    if as_json:
        typer.echo(json.dumps([r.public() for r in records], indent=2))
        return
    if not records:
        typer.echo("no keys (the key store is empty or absent)")
    for r in records:
        status = f"revoked {r.revoked_at}" if r.revoked else "active"
        typer.echo(f"{r.name}\tread={','.join(r.read)}\twrite={','.join(r.write) or '-'}\t"
                   f"admin={'yes' if r.admin else 'no'}\tcreated={r.created_at}\t"
                   f"last_used={r.last_used_at or '-'}\t{status}")


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: its next request is refused (the store stays, so the server stays
    locked even when no key is left)."""
    store = _store()
    record = _run(lambda: store.revoke(name))
    typer.echo(f"revoked key '{record.name}' ({record.revoked_at})")
