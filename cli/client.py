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
import socket
import sys
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


class _NoAnswer(OSError):
    """The server took the request but gave no complete answer."""


def _request(info, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One HTTP/1.1 exchange over a plain socket (``Connection: close``): the server is ours and answers
    JSON with a Content-Length, and http.client with its email parser would double this path's start-up."""
    authority = info.url.split("://", 1)[1].split("/", 1)[0]  # http://host:port, as web.discovery writes it
    host, _, port = authority.rpartition(":")
    data = json.dumps(body).encode() if body is not None else b""
    token = os.environ.get("TAILOR_SERVE_TOKEN") or info.token
    head = [f"{method} {path} HTTP/1.1", f"Host: {authority}", "Accept: application/json", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT_S) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    header, sep, payload = raw.partition(b"\r\n\r\n")
    status_line = header.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise _NoAnswer(f"no complete HTTP answer ({len(raw)} bytes)")
    try:
        answer = json.loads(payload or b"{}")
    except ValueError:
        answer = {}
    return int(status_line[1]), answer if isinstance(answer, dict) else {}


def _refreshed(out: dict[str, Any]) -> str:
    return (f"embeddings refreshed ({out['refresh']}): {out['changed_images']} images changed "
            f"({out['refresh_seconds']:.2f} s, then {out['save_seconds']:.2f} s writing the index)")


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "  -  "


def _picture(info, out: dict[str, Any], path: Path) -> Path:
    """The contact sheet of `tailor query --picture`, from the server's image route (no engine here)."""
    import tempfile
    import urllib.error
    import urllib.parse
    import urllib.request

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
    except ConnectionRefusedError:
        return None  # nothing listens (a server that died without removing its file): nothing was sent
    except TimeoutError as exc:
        print(f"error: the server at {info.url} did not answer in time: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: the server at {info.url} did not answer: {exc}", file=sys.stderr)
        return 1
