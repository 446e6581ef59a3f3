"""``modelsign hash``: print an artifact's root digest, or its OMS predicate as canonical JSON."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from modelsign.cli import _options as opt

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
    "Remote sources (s3://, gs://, hf://[datasets/]ORG/NAME@<commit>) are read through fsspec "
    "and give the same digests as the same files on disk; --format json then prints "
    "{subject, predicate, source}, the predicate exactly as for a directory. --executor dask "
    "runs the work on a Dask cluster's workers:\n\n"
    "  modelsign hash s3://bucket/datasets/web-2026 --storage-option "
    "endpoint_url=http://127.0.0.1:9000\n\n"
    "  modelsign hash hf://datasets/org/name@<40-hex commit> --executor dask --scheduler "
    "tcp://10.0.0.5:8786\n\n"
    "Exit codes: 0 done, 2 bad input (missing path, empty model, symlink, unreadable or "
    "changing file, bad name; unknown bucket, refused credentials, unreachable scheduler, "
    "workers without modelsign), 3 internal error.\n"
)


def _write(data: bytes) -> None:
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    sys.stdout.flush()
    out.write(data)
    out.flush()


def hash_command(
    source: Annotated[str, typer.Argument(
        metavar="PATH_OR_URI", help="Model (or dataset) directory or file to hash, or a remote "
        "source: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, hf://[datasets/]ORG/NAME@<commit>.",
        show_default=False)],
    output_format: Annotated[opt.OutputFormat, typer.Option(
        "--format", help="text: sha256:<root digest>; json: the OMS predicate (RFC 8785); for "
        "a remote source {subject, predicate, source}.")
    ] = opt.OutputFormat.text,
    method: opt.MethodOption = opt.Method.files,
    algorithm: opt.AlgorithmOption = opt.Algorithm.sha256,
    shard_size: opt.ShardSizeOption = None,
    ignore_path: opt.IgnorePathOption = None,
    allow_symlinks: opt.AllowSymlinksOption = False,
    no_cache: opt.NoCacheOption = False,
    executor: opt.ExecutorOption = opt.ExecutorName.threads,
    scheduler: opt.SchedulerOption = None,
    storage_option: opt.StorageOptionOption = None,
    trust_hub_lfs_sha256: opt.TrustHubLfsOption = False,
) -> None:
    from modelsign.manifest import hash_model

    spec = opt.hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                      ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                      no_cache=no_cache)
    kwargs: dict[str, Any] = {}
    if storage_option or trust_hub_lfs_sha256:
        from modelsign.hashing._remote import parse_storage_options

        kwargs = {"storage_options": parse_storage_options(storage_option or ()),
                  "trust_hub_lfs_sha256": trust_hub_lfs_sha256}
    with opt.executor_from_options(executor, scheduler, source=source) as ex:
        manifest = hash_model(source, spec, executor=ex, **kwargs)
    origin = manifest.source
    if origin is not None and origin.trust_hub_lfs_sha256:
        sys.stderr.write(f"modelsign: note: {len(origin.hub_lfs_sha256)} LFS file(s) were not "
                         "read: their digests are the Hub's metadata (--trust-hub-lfs-sha256); "
                         "hash without it to measure every byte\n")
    if output_format is opt.OutputFormat.json:
        import rfc8785

        doc: dict[str, Any] = manifest.to_predicate()
        if origin is not None:  # beside the predicate, which stays exactly what is signed
            doc = {"subject": {"name": manifest.name, "digest": {"sha256": manifest.root_hex}},
                   "predicate": doc, "source": origin.to_json()}
        _write(rfc8785.dumps(doc) + b"\n")
    else:
        _write(f"sha256:{manifest.root_hex}\n".encode())


def register(app: typer.Typer) -> None:
    app.command("hash", help=_HELP, no_args_is_help=True)(hash_command)
