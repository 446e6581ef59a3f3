"""``modelsign hash``: print an artifact's root digest, or its OMS predicate as canonical JSON."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from modelsign.cli._options import (
    Algorithm,
    AlgorithmOption,
    AllowSymlinksOption,
    IgnorePathOption,
    Method,
    MethodOption,
    NoCacheOption,
    ShardSizeOption,
    hash_spec_from_options,
)

_HELP = (
    "Hash a model (or dataset) directory or file: print its root digest.\n\n"
    "The root digest (sha256:<hex>) is SHA-256 over the digests of every file (or shard), in "
    "manifest order, exactly as OpenSSF Model Signing v1.0 and model_signing compute it: the "
    "artifact's content identity, the one provenance claims point at. --format json prints the "
    "OMS predicate instead (serialization + resources), canonical RFC 8785 JSON, byte-identical "
    "for the same files.\n\n"
    "Unchanged files are served from an incremental cache (keyed by path, inode, size, mtime "
    "and ctime), so re-hashing after editing a README only reads the README; --no-cache reads "
    "every byte. A progress bar is shown when stderr is a terminal.\n\n"
    "Examples:\n\n"
    "  modelsign hash ./my-model\n\n"
    "  modelsign hash ./my-model --method shards --algorithm blake3 --format json\n\n"
    "  modelsign hash ./dataset --ignore-path logs --ignore-path cache/tmp\n\n"
    "  modelsign hash model.safetensors --no-cache\n\n"
    "Exit codes: 0 done, 2 bad input (missing path, empty model, symlink, unreadable or "
    "changing file, bad name), 3 internal error.\n"
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _write(data: bytes) -> None:
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    sys.stdout.flush()
    out.write(data)
    out.flush()


def hash_command(
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file to hash.",
                                         show_default=False)],
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: sha256:<root digest>; json: the OMS predicate (RFC 8785).")
    ] = OutputFormat.text,
    method: MethodOption = Method.files,
    algorithm: AlgorithmOption = Algorithm.sha256,
    shard_size: ShardSizeOption = None,
    ignore_path: IgnorePathOption = None,
    allow_symlinks: AllowSymlinksOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    from modelsign.manifest import hash_model

    spec = hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                  ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                  no_cache=no_cache)
    manifest = hash_model(path, spec)
    if output_format is OutputFormat.json:
        import rfc8785

        _write(rfc8785.dumps(manifest.to_predicate()) + b"\n")
    else:
        _write(f"sha256:{manifest.root_hex}\n".encode())


def register(app: typer.Typer) -> None:
    app.command("hash", help=_HELP, no_args_is_help=True)(hash_command)
