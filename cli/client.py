"""`tailor query | like | tag` through a running `tailor serve`, when there is one.

A command on its own pays for Python, torch and the engine's files (seconds) before its work; the server
holds them already, so the command only sends its request. The server is found through
``$TAILOR_HOME/serve.json`` (:mod:`web.discovery`). This path imports the standard library only (no
typer, rich, neo4j or torch): :func:`run` returns ``None`` whenever the command should run as usual
instead (no server, one that does not answer, ``--local``, an explicit ``--uri/--user/--data-dir``, a
Neo4j other than the server's, ``--help`` or arguments it does not know), and the full CLI takes over.
The output and exit codes are the full command's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

COMMANDS = ("query", "like", "tag")
# Exit codes as cli.console's: the request's fault 2, the server's state 5, anything else 1.
_EXIT = {400: 2, 413: 2, 415: 2, 422: 2, 503: 5}
TIMEOUT_S = 330.0  # a sync may take minutes on a large catalog; the server answers 503 past its own limit


class _Unsupported(Exception):
    """Arguments the light path does not handle: the full CLI runs instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse's hook: leave bad input to the full CLI
        raise _Unsupported(message)


def _parser(command: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"tailor {command}", add_help=False)
    p.add_argument("--who", default="cli")
    p.add_argument("--json", dest="as_json", action="store_true")
    p.add_argument("--local", action="store_true")
    for name in ("--uri", "--user", "--data-dir"):
        p.add_argument(name, default=None)
    if command == "query":
        p.add_argument("--image", required=True)
        p.add_argument("--text", required=True)
        p.add_argument("-k", type=int, default=10)
        p.add_argument("--picture", default=None)
    elif command == "like":
        p.add_argument("--query", dest="query_id", required=True)
        p.add_argument("--images", required=True)
    else:
        p.add_argument("sentence")
        p.add_argument("--image", required=True)
    return p


def _home() -> Path:
    return Path(os.environ.get("TAILOR_HOME", Path.cwd() / ".tailor")).expanduser().resolve()


def _server(args: argparse.Namespace):
    from web.discovery import read_server_file

    if args.local or args.uri or args.user or args.data_dir:
        return None
    info = read_server_file(_home())
    if info is None or Path(info.home).resolve() != _home():
        return None
    if (os.environ.get("NEO4J_URI") or None) != info.neo4j_uri:
        return None  # the command would talk to another database than the server does
    return info


def _request(info, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    token = os.environ.get("TAILOR_SERVE_TOKEN") or info.token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(info.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        return exc.code, payload if isinstance(payload, dict) else {}


def _refreshed(out: dict[str, Any]) -> str:
    return (f"embeddings refreshed ({out['refresh']}): {out['changed_images']} images changed "
            f"({out['refresh_seconds']:.2f} s, then {out['save_seconds']:.2f} s writing the index)")


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "  -  "


def _picture(info, out: dict[str, Any], path: Path) -> Path:
    """The contact sheet of `tailor query --picture`, from the server's image route (no engine here)."""
    import tempfile

    from cli.pictures import Tile, render_query

    with tempfile.TemporaryDirectory() as folder:
        def tile(image_id: str, label: str) -> Tile:
            file = Path(folder) / f"{len(os.listdir(folder))}.img"
            req = urllib.request.Request(f"{info.url}/ui/image/{urllib.parse.quote(image_id, safe='')}",
                                         headers={"Authorization": f"Bearer {info.token}"} if info.token else {})
            try:
                with urllib.request.urlopen(req, timeout=30) as response:
                    file.write_bytes(response.read())
            except urllib.error.URLError:
                pass  # an empty tile, as for a product without a photo
            return Tile(str(file), label)

        results = [tile(r["id"], f"{n}. {r['id']} {r['title']}") for n, r in enumerate(out["results"], 1)]
        return render_query(tile(out["candidate"], out["candidate"]), out["text"], results, path)


def _query(info, args) -> int:
    status, out = _request(info, "POST", "/query", {"image": args.image, "text": args.text, "k": args.k,
                                                    "who": args.who})
    if status != 200:
        return _fail(status, out)
    if args.picture:
        out["picture"] = str(_picture(info, out, Path(args.picture)))
    out["server"] = info.url
    if args.as_json:
        print(json.dumps(out, default=str))
        return 0
    roles = out.get("roles", {})
    print(f"query {out['query_id']}: {args.image} + \"{args.text}\" "
          f"(added {roles.get('added', [])}, removed {roles.get('removed', [])})")
    for n, r in enumerate(out["results"], 1):
        print(f"{n:>3}. {r['id']:>8} {_score(r.get('score'))} {r['title']}")
        for reason in r.get("reasons", [])[:3]:
            print(f"        - {reason}")
    print(f"picture: {out['picture']}" if args.picture
          else f"answered by {info.url} (pictures: --picture PATH, or the page at {info.url}/)")
    return 0


def _like(info, args) -> int:
    ids = [i.strip() for i in args.images.split(",") if i.strip()]
    status, out = _request(info, "POST", "/like", {"query_id": args.query_id, "images": ids, "who": args.who})
    if status != 200:
        return _fail(status, out)
    out["server"] = info.url
    if args.as_json:
        print(json.dumps(out, default=str))
        return 0
    print(f"liked {len(ids)} images for {args.query_id}: created {out['created']}")
    print(_refreshed(out))
    print("the query answered again:")
    for n, r in enumerate(out["results"], 1):
        mark = "  <- liked" if r["id"] in ids else ""
        print(f"{n:>3}. {r['id']:>8} {_score(r.get('score'))} {r['title']}{mark}")
    return 0


def _tag(info, args) -> int:
    status, out = _request(info, "POST", "/tag", {"image": args.image, "sentence": args.sentence, "who": args.who})
    if status != 200:
        return _fail(status, out)
    out["server"] = info.url
    if args.as_json:
        print(json.dumps(out, default=str))
        return 0
    for w in out["tags"]:
        print(f"tagged {args.image} with {w['attribute']} ({w['source']}"
              + (", new attribute" if w["new_attribute"] else "") + ")")
    print(_refreshed(out))
    return 0


def _fail(status: int, out: dict[str, Any]) -> int:
    print(f"error: {out.get('error') or f'the server answered {status}'}", file=sys.stderr)
    return _EXIT.get(status, 1)


def run(argv: list[str]) -> int | None:
    """Run ``tailor <argv>`` through the server; ``None``: run the full command instead (see module doc)."""
    if not argv or argv[0] not in COMMANDS or any(a in ("--help", "-h") for a in argv[1:]):
        return None
    command = argv[0]
    try:
        args = _parser(command).parse_args(argv[1:])
    except _Unsupported:
        return None
    info = _server(args)
    if info is None:
        return None
    try:
        return {"query": _query, "like": _like, "tag": _tag}[command](info, args)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None  # nothing listens (a server that died without removing its file): nothing was sent
        print(f"error: the server at {info.url} did not answer: {exc.reason}", file=sys.stderr)
        return 1
    except ConnectionRefusedError:
        return None
    except (TimeoutError, OSError) as exc:
        print(f"error: the server at {info.url} did not answer in time: {exc}", file=sys.stderr)
        return 1
