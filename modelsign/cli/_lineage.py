"""``modelsign lineage`` (verify the chain of ancestors) and ``modelsign store add``.

The option aliases, :func:`lineage_kwargs` and :func:`emit` are shared with ``modelsign verify
--lineage``, so both commands take the same options and print the same output.
"""

from __future__ import annotations

import io
import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign.cli import _options as opt
from modelsign.cli._text import err, out, safe
from modelsign.errors import InputError, InternalError, LineageError, ModelsignError

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.lineage import LineageEdge, LineageGraph, LineageNode, ParentRule

__all__ = [
    "FetchFilesOption",
    "HubOption",
    "LineageFormat",
    "MaxDepthOption",
    "NoDatasetsOption",
    "ParentCertChainOption",
    "ParentIdentityOption",
    "ParentIdentityRegexOption",
    "ParentKeyOption",
    "RemoteMaxBytesOption",
    "RemoteTimeoutOption",
    "StoreOption",
    "UpstreamOption",
    "emit",
    "lineage_kwargs",
    "parse_parent_rules",
    "parse_upstream",
    "raise_unless_ok",
    "register",
    "tree_text",
]

_LINEAGE_HELP = (
    "Verify the lineage of a model: every ancestor its provenance names, each on its own "
    "signature.\n\n"
    "Reads the verified derivation claims in PATH/claims.jsonl and walks upward: each "
    "parent (base model or dataset) is found by the root digest its child recorded, in "
    "this order: --upstream directories, the --store, then (with --hub) the Hugging Face "
    "Hub for hf:// URIs pinned to a commit. For each parent: its model.sig is verified "
    "under the rule for *that* parent (--parent-identity/--parent-key PATTERN=...; a child "
    "never vouches for its parent), its bytes are checked (re-hashed from a directory; "
    "compared with the Hub's per-file sha256 metadata; not at all for a store entry, which "
    "keeps no weights, and the output says so), its signed root digest must equal the "
    "digest the child recorded, then its own claims are verified and followed. Merges have "
    "several parents: the lineage is a graph.\n\n"
    "Each node ends in one state: verified, identity not allowed, unsigned, digest "
    "mismatch, unresolved, claim invalid; with the reason.\n\n"
    "PATTERN is sha256:<hex> (one artifact), or a glob over the URI the child recorded for "
    "the parent (over its name when it has no URI): hf://acme/*, or * for every parent. "
    "Digest patterns win; then the first glob that matches, with every rule given for that "
    "same pattern.\n\n"
    "Examples:\n\n"
    "  modelsign lineage ./q4 --key release.pub --parent-key '*=release.pub' --store "
    "./provenance\n\n"
    "  modelsign lineage ./q4 --key release.pub --upstream sha256:<hex>=./base "
    "--parent-key 'sha256:<hex>=meta.pub'\n\n"
    "  modelsign lineage ./ft --identity ml@acme.example --issuer "
    "https://accounts.google.com --parent-identity "
    "'hf://meta-llama/*=llama@meta.example@https://accounts.google.com' --hub\n\n"
    "  modelsign lineage ./q4 --key release.pub --parent-key '*=release.pub' --store "
    "./provenance --format dot | dot -Tsvg > lineage.svg\n\n"
    "Exit codes: 0 every node verified, 1 a lineage failure (any node not verified), 2 bad "
    "input, 3 internal error.\n"
)

_STORE_HELP = (
    "Add a signed artifact's model.sig, claims.jsonl and signed manifest to a provenance "
    "store.\n\n"
    "The store is content-addressed: DIR/sha256/<root digest>/. Lineage then verifies a "
    "parent from its store entry (signature, signer, and that the signed root digest is "
    "the one the child recorded) without its weights. The artifact's files are hashed and "
    "must match its model.sig first. With --key or --identity/--issuer the signer is "
    "verified too; without, who signed is left to lineage, which checks every store entry "
    "under the rule for it. Claims already in the store are kept and new ones appended.\n\n"
    "Examples:\n\n"
    "  modelsign store add ./base --store ./provenance\n\n"
    "  modelsign store add ./base --store ./provenance --key release.pub\n\n"
    "Exit codes: 0 added, 1 the files differ from the signature (or the signer is not "
    "allowed), 2 bad input, 3 internal error.\n"
)

_PARENTS = "Who may sign the ancestors"
_RESOLVE = "Finding the ancestors"


class LineageFormat(StrEnum):
    tree = "tree"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


UpstreamOption = Annotated[list[str] | None, typer.Option(
    "--upstream", help="sha256:<root digest>=DIR: the ancestor with that digest is the "
    "directory DIR; repeatable.", rich_help_panel=_RESOLVE, show_default=False)]
StoreOption = Annotated[Path | None, typer.Option(
    "--store", help="Provenance store (modelsign store add) to find ancestors in.",
    rich_help_panel=_RESOLVE, show_default=False)]
HubOption = Annotated[bool, typer.Option(
    "--hub", help="Fetch model.sig and claims.jsonl of hf:// ancestors pinned to a commit from "
    "the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN); nothing is fetched without it.",
    rich_help_panel=_RESOLVE)]
FetchFilesOption = Annotated[bool, typer.Option(
    "--fetch-files", help="With --hub: download every file of Hub ancestors and re-hash them "
    "(default: compare the signed manifest with the Hub's sha256 metadata).",
    rich_help_panel=_RESOLVE)]
RemoteTimeoutOption = Annotated[float, typer.Option(
    "--remote-timeout", min=0.001, help="Seconds the whole walk may spend on the Hub.",
    rich_help_panel=_RESOLVE)]
RemoteMaxBytesOption = Annotated[int, typer.Option(
    "--remote-max-bytes", min=1, help="Bytes the whole walk may fetch from the Hub.",
    rich_help_panel=_RESOLVE)]
MaxDepthOption = Annotated[int, typer.Option(
    "--max-depth", min=0, max=1024, help="Generations of ancestors to walk; a parent beyond "
    "is reported unresolved.", rich_help_panel=_RESOLVE)]
NoDatasetsOption = Annotated[bool, typer.Option(
    "--no-datasets", help="Follow base models only (datasets are not resolved).",
    rich_help_panel=_RESOLVE)]
ParentIdentityOption = Annotated[list[str] | None, typer.Option(
    "--parent-identity", help="PATTERN=ID@ISSUER: ancestors PATTERN selects must be signed "
    "keylessly by ID (exact SAN) from ISSUER; repeatable.", rich_help_panel=_PARENTS,
    show_default=False)]
ParentIdentityRegexOption = Annotated[list[str] | None, typer.Option(
    "--parent-identity-regex", help="PATTERN=REGEX@ISSUER: as --parent-identity, with a regex "
    "searched in the SAN (anchor it).", rich_help_panel=_PARENTS, show_default=False)]
ParentKeyOption = Annotated[list[str] | None, typer.Option(
    "--parent-key", help="PATTERN=PUB.pem: ancestors PATTERN selects must be signed with this "
    "public key; repeatable.", rich_help_panel=_PARENTS, show_default=False)]
ParentCertChainOption = Annotated[list[str] | None, typer.Option(
    "--parent-cert-chain", help="PATTERN=CA.pem: ancestors PATTERN selects must be signed by a "
    "certificate chaining to CA.pem; repeatable.", rich_help_panel=_PARENTS,
    show_default=False)]

_ISSUER = re.compile(r"^https?://\S+$")


def _split(flag: str, text: str, what: str) -> tuple[str, str]:
    pattern, sep, value = text.partition("=")
    if not sep or not pattern or not value:
        raise InputError(f"{flag} must be PATTERN={what}",
                         expected=f"e.g. {flag} 'hf://acme/*={what}' or 'sha256:<hex>={what}'",
                         actual=repr(text)[:200])
    return pattern, value


def _identity(flag: str, text: str) -> tuple[str, str, str]:
    pattern, value = _split(flag, text, "ID@ISSUER")
    who, sep, issuer = value.rpartition("@")
    if not sep or not who or not _ISSUER.match(issuer):
        raise InputError(f"{flag} must be PATTERN=ID@ISSUER, ISSUER an http(s) URL",
                         expected="e.g. 'hf://acme/*=ml@acme.example@https://accounts.google.com'",
                         actual=repr(text)[:200])
    return pattern, who, issuer


def parse_parent_rules(*, identity: list[str] | None = None,
                       identity_regex: list[str] | None = None, key: list[str] | None = None,
                       cert_chain: list[str] | None = None) -> list[ParentRule]:
    """The ``--parent-*`` options as :class:`~modelsign.lineage.ParentRule` values, in the order
    of the options of each kind (identities, regexes, keys, CA files)."""
    from modelsign.lineage import ParentRule, SignerRule
    from modelsign.verify import Identity

    rules: list[ParentRule] = []
    for text in identity or []:
        pattern, who, issuer = _identity("--parent-identity", text)
        rules.append(ParentRule(pattern, SignerRule(
            identities=(Identity(identity=who, issuer=issuer),))))
    for text in identity_regex or []:
        pattern, who, issuer = _identity("--parent-identity-regex", text)
        rules.append(ParentRule(pattern, SignerRule(
            identities=(Identity(identity_regex=who, issuer=issuer),))))
    for flag, items in (("--parent-key", key), ("--parent-cert-chain", cert_chain)):
        for text in items or []:
            pattern, value = _split(flag, text, "FILE.pem")
            p = Path(value)
            if not p.is_file():
                raise InputError(f"{flag}: file not found", path=p,
                                 hint="give PATTERN=PATH to a PEM file")
            signer = SignerRule(keys=(p,)) if flag == "--parent-key" else \
                SignerRule(cert_chain=(p,))
            rules.append(ParentRule(pattern, signer))
    return rules


def parse_upstream(items: list[str] | None) -> list[tuple[str, Path]]:
    pairs = []
    for text in items or []:
        digest, sep, directory = text.partition("=")
        if not sep or not directory:
            raise InputError("--upstream must be sha256:<hex>=DIR",
                             expected="e.g. --upstream sha256:<64 hex>=./base-model",
                             actual=repr(text)[:200])
        pairs.append((digest, Path(directory)))
    return pairs


def lineage_kwargs(*, upstream: list[str] | None, store: Path | None, hub: bool,
                   fetch_files: bool, remote_timeout: float, remote_max_bytes: int,
                   max_depth: int, no_datasets: bool, parent_identity: list[str] | None,
                   parent_identity_regex: list[str] | None, parent_key: list[str] | None,
                   parent_cert_chain: list[str] | None) -> dict[str, Any]:
    """The keyword arguments of :func:`modelsign.lineage.verify_lineage` the options describe
    (everything but the subject's own signer and trust)."""
    from modelsign.lineage import Budget, HuggingFaceHub

    if fetch_files and not hub:
        raise InputError("--fetch-files needs --hub", hint="add --hub to resolve from the Hub")
    return {
        "parents": parse_parent_rules(identity=parent_identity,
                                      identity_regex=parent_identity_regex, key=parent_key,
                                      cert_chain=parent_cert_chain),
        "upstream": parse_upstream(upstream),
        "store": store,
        "hub": HuggingFaceHub() if hub else None,
        "fetch_files": fetch_files,
        "budget": Budget(max_seconds=remote_timeout, max_bytes=remote_max_bytes),
        "max_depth": max_depth,
        "include_datasets": not no_datasets,
    }


# ------------------------------------------------------------------------------ output
_MARK = {"verified": "✔", "identity_not_allowed": "✘", "unsigned": "✘",
         "digest_mismatch": "✘", "unresolved": "?", "claim_invalid": "✘"}
_STYLE = {"verified": "green", "identity_not_allowed": "yellow", "unsigned": "yellow",
          "digest_mismatch": "red", "unresolved": "bright_black", "claim_invalid": "red"}


def _signer(n: LineageNode) -> str:
    s = n.signer
    if s is None:
        return ""
    if s.kind == "keyless":
        return f"signed by {s.identity} ({s.issuer})"
    if s.kind == "key":
        ident = s.identity or ""
        return f"signed by key {ident[:23]}..." if len(ident) > 26 else f"signed by key {ident}"
    return f"signed by certificate {s.identity}"


def _node_text(n: LineageNode, edge: LineageEdge | None) -> Any:
    from rich.text import Text

    # Names, URIs, identities and reasons come from signed (or unsigned) claims: escaped here,
    # before rich lays the tree out, so a control sequence in them never reaches a terminal.
    t = Text()
    if edge is not None:
        t.append(safe(edge.label, newlines=False), style="bold cyan")
        t.append(" ← " if not edge.cycle else " ↻ cycle ← ")
    t.append(safe(n.name or n.uri or n.key, newlines=False), style="bold")
    if n.uri and n.name and n.uri != n.name:
        t.append(f" {safe(n.uri, newlines=False)}")
    t.append(f" sha256:{n.digest[:12]}" if n.digest else "")
    t.append(f"  {_MARK[n.state]} {n.state.replace('_', ' ')}", style=_STYLE[n.state])
    where = {"local": "re-hashed", "store": "from the store, bytes not re-hashed",
             "hub": "from the Hub"}.get(n.source or "", "")
    if n.bytes_check == "hub_metadata":
        where = "from the Hub, checked against its sha256 metadata"
    extra = ", ".join(x for x in (safe(_signer(n), newlines=False), where) if x)
    if extra:
        t.append(f"  ({extra})", style="dim")
    if n.reason:
        t.append(f"\n{safe(n.reason, newlines=False)}", style=_STYLE[n.state])
    return t


def tree_text(graph: LineageGraph, *, width: int = 160) -> str:
    """The rich tree, rendered to text (parents under their child, relation on each branch)."""
    from rich.console import Console
    from rich.tree import Tree

    nodes = {n.key: n for n in graph.all_nodes}
    root = Tree(_node_text(graph.root, None))
    shown: set[str] = {graph.root.key}

    def grow(branch: Tree, key: str, stack: tuple[str, ...]) -> None:
        for e in graph.parents(key):
            n = nodes[e.parent]
            sub = branch.add(_node_text(n, e))
            if e.cycle or e.parent in stack:
                continue
            if e.parent in shown:
                if graph.parents(e.parent):
                    sub.add("(its ancestors are shown above)")
                continue
            shown.add(e.parent)
            grow(sub, e.parent, (*stack, e.parent))

    grow(root, graph.root.key, (graph.root.key,))
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None,
                      force_terminal=False)
    console.print(root)
    lines = [console.export_text(styles=False).rstrip("\n")]
    s = graph.summary()
    verdict = "verified" if graph.ok else "FAILED"
    lines.append(f"lineage {verdict}: {len(graph.all_nodes)} node(s), depth {graph.depth}; "
                 + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in s.items() if v))
    lines += [f"warning: {safe(w, newlines=False)}" for w in graph.warnings]
    return "\n".join(lines) + "\n"


def emit(graph: LineageGraph, fmt: LineageFormat) -> None:
    """Print the graph in ``fmt`` on stdout (for json/mermaid/dot a one-line verdict goes to
    stderr), then raise :class:`~modelsign.errors.LineageError` (exit 1) unless it verified."""
    if fmt is LineageFormat.tree:
        out(tree_text(graph))
    else:
        if fmt is LineageFormat.json:
            body = json.dumps(graph.to_json(), indent=2) + "\n"
        elif fmt is LineageFormat.mermaid:
            body = graph.to_mermaid()
        else:
            body = graph.to_dot()
        out(body)  # labels are escaped for mermaid/dot; terminal controls are escaped here
        sys.stdout.flush()
        err(f"lineage {graph.verdict}: {len(graph.all_nodes)} node(s), depth {graph.depth}")
        for line in graph.describe_failures():
            err(f"  {line}")
    raise_unless_ok(graph)


def raise_unless_ok(graph: LineageGraph) -> None:
    """Raise :class:`~modelsign.errors.LineageError` (exit 1) unless every node verified."""
    if graph.ok:
        return
    bad = graph.failures
    first = bad[0]
    raise LineageError(
        f"{len(bad)} node(s) of the lineage do not verify; first: {first.label()}: "
        f"{first.state.replace('_', ' ')}",
        path=graph.path, hint="see each node's reason above; a parent must verify on its "
                              "own signature under the rule given for it")


def _error_document(e: ModelsignError, path: Path) -> dict[str, Any]:
    from modelsign.lineage import LINEAGE_SCHEMA_ID

    return {"schema": LINEAGE_SCHEMA_ID, "verdict": "error" if e.exit_code != 1 else "failed",
            "path": str(path), "root": None, "maxDepth": None, "depth": None, "summary": None,
            "nodes": [], "edges": [], "warnings": [],
            "error": {"type": type(e).__name__, "exit_code": e.exit_code, "message": str(e),
                      "path": e.path, "expected": e.expected, "actual": e.actual,
                      "hint": e.hint}}


# ------------------------------------------------------------------------------ commands
def lineage(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file.",
                                         show_default=False)],
    identity: opt.IdentityOption = None,
    identity_regex: opt.IdentityRegexOption = None,
    issuer: opt.IssuerOption = None,
    key: opt.PublicKeyOption = None,
    cert_chain: opt.CertChainOption = None,
    trusted_root: opt.TrustedRootOption = None,
    trust_config: opt.TrustConfigOption = None,
    upstream: UpstreamOption = None,
    store: StoreOption = None,
    hub: HubOption = False,
    fetch_files: FetchFilesOption = False,
    remote_timeout: RemoteTimeoutOption = 120.0,
    remote_max_bytes: RemoteMaxBytesOption = 256 * 1024 * 1024,
    max_depth: MaxDepthOption = 16,
    no_datasets: NoDatasetsOption = False,
    parent_identity: ParentIdentityOption = None,
    parent_identity_regex: ParentIdentityRegexOption = None,
    parent_key: ParentKeyOption = None,
    parent_cert_chain: ParentCertChainOption = None,
    use_cache: Annotated[bool, typer.Option(
        "--use-cache", help="Reuse cached digests of unchanged files when re-hashing.")] = False,
    output_format: Annotated[LineageFormat, typer.Option(
        "--format", help="tree (default), json (one document; text on stderr), mermaid or "
        "dot.")] = LineageFormat.tree,
) -> None:
    from modelsign.cli._ordered import ORDER_KEY
    from modelsign.lineage import verify_lineage

    try:
        rules = opt.identity_rules(ctx.meta.get(ORDER_KEY, []), identity, identity_regex, issuer)
        trust = opt.trust_from_options(trusted_root, trust_config)
        kwargs = lineage_kwargs(
            upstream=upstream, store=store, hub=hub, fetch_files=fetch_files,
            remote_timeout=remote_timeout, remote_max_bytes=remote_max_bytes,
            max_depth=max_depth, no_datasets=no_datasets, parent_identity=parent_identity,
            parent_identity_regex=parent_identity_regex, parent_key=parent_key,
            parent_cert_chain=parent_cert_chain)
        graph = verify_lineage(path, identities=rules, key=key, cert_chain=cert_chain or None,
                               trust=trust, use_cache=use_cache, **kwargs)
    except ModelsignError as e:
        if output_format is LineageFormat.json:
            sys.stdout.write(json.dumps(_error_document(e, path), indent=2) + "\n")
        raise
    except Exception as e:
        if output_format is LineageFormat.json:
            internal = InternalError(f"internal error: {type(e).__name__}: {e}")
            sys.stdout.write(json.dumps(_error_document(internal, path), indent=2) + "\n")
        raise
    emit(graph, output_format)


def store_add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Signed model (or dataset) directory or file.",
                                         show_default=False)],
    store: Annotated[Path, typer.Option("--store", help="The provenance store directory "
                                        "(created if missing).", show_default=False)],
    identity: opt.IdentityOption = None,
    identity_regex: opt.IdentityRegexOption = None,
    issuer: opt.IssuerOption = None,
    key: opt.PublicKeyOption = None,
    trusted_root: opt.TrustedRootOption = None,
    trust_config: opt.TrustConfigOption = None,
) -> None:
    from modelsign.cli._ordered import ORDER_KEY
    from modelsign.lineage import SignerRule
    from modelsign.lineage import store_add as do_add

    rules = opt.identity_rules(ctx.meta.get(ORDER_KEY, []), identity, identity_regex, issuer)
    signer = SignerRule.of(identities=rules, key=key) if (rules or key is not None) else None
    trust = opt.trust_from_options(trusted_root, trust_config)
    if store.exists() and not store.is_dir():
        raise InputError("--store is not a directory", path=store,
                         expected="a directory (created if missing)",
                         actual="a file" if store.is_file() else "not a directory",
                         hint="pass a directory to --store, e.g. --store ./provenance-store")
    entry = do_add(path, store, signer=signer, trust=trust)
    checked = (f"signer verified: {entry.verified_signer}" if entry.verified_signer
               else "files match model.sig; signer not checked here (lineage checks it)")
    out(f"added sha256:{entry.root_digest} to {entry.path} ({', '.join(entry.files)}); "
        f"{checked}\n")


def register(app: typer.Typer) -> None:
    from modelsign.cli._ordered import OrderedCommand

    app.command("lineage", help=_LINEAGE_HELP, no_args_is_help=True,
                cls=OrderedCommand)(lineage)
    group = typer.Typer(name="store", help="The provenance store: signatures and claims of "
                        "ancestors, without their weights.", no_args_is_help=True)
    group.command("add", help=_STORE_HELP, no_args_is_help=True, cls=OrderedCommand)(store_add)
    app.add_typer(group, name="store")
