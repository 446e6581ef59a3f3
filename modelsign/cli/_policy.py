"""``modelsign policy``: the policy file's JSON Schema, and a linter for policy files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelsign.cli import _options as opt
from modelsign.cli._text import err, out

# Paragraphs are single lines (rich does not re-wrap), split here only to fit the source width.
_HELP = (
    "Write and check policy files (apiVersion: modelsign/v1, kind: ModelPolicy).\n\n"
    "A policy says who must have signed a model, which claims must exist and what they must "
    "say, which datasets, lineage and framework versions are acceptable, how old a signature "
    "may be and whether pickle files are allowed, with CEL conditions for the rest. "
    "`modelsign verify PATH --policy FILE` applies one after verification.\n"
)

_SCHEMA_HELP = (
    "Print the JSON Schema of policy files (or, with --report, of the policy report).\n\n"
    "Point your editor's YAML language server at it for completion and checks as you type.\n\n"
    "Examples:\n\n"
    "  modelsign policy schema > policy.schema.json\n\n"
    "  modelsign policy schema --report\n\n"
    "Exit codes: 0 printed, 3 internal error.\n"
)

_LINT_HELP = (
    "Check policy files.\n\n"
    "Checks the YAML syntax, the schema (unknown keys, wrong types, bad durations, PEP 440 "
    "specifiers), every CEL condition (it must compile and use only the documented variables), "
    "and the key and certificate files the policy names. Every problem is printed as "
    "FILE:LINE: KEY.PATH: MESSAGE.\n\n"
    "Examples:\n\n"
    "  modelsign policy lint registry.yaml\n\n"
    "  modelsign policy lint policies/*.yaml --format json\n\n"
    "Exit codes: 0 clean, 2 problems found (or a file cannot be read), 3 internal error.\n"
)


def schema_command(
    report: Annotated[bool, typer.Option(
        "--report", help="Print the schema of the JSON policy report instead.")] = False,
) -> None:
    from modelsign.policy import policy_json_schema, report_json_schema

    schema = report_json_schema() if report else policy_json_schema()
    sys.stdout.write(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def lint_command(
    files: Annotated[list[Path], typer.Argument(help="Policy files to check.",
                                                show_default=False)],
    output_format: Annotated[opt.OutputFormat, typer.Option(
        "--format", help="text: one problem per line; json: one document for all files.")
    ] = opt.OutputFormat.text,
) -> None:
    from modelsign.policy import lint_policy

    results = {str(f): lint_policy(f) for f in files}
    bad = any(results.values())
    if output_format is opt.OutputFormat.json:
        doc = {"ok": not bad, "files": [
            {"file": name, "ok": not problems,
             "problems": [{"line": p.line, "path": p.path, "message": p.message}
                          for p in problems]}
            for name, problems in results.items()]}
        # ASCII only: policy files are outside text; every other character is escaped.
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        for name, problems in results.items():
            for p in problems:
                out(f"{p}\n")
            if not problems:
                err(f"{name}: ok")
        if bad:
            n = sum(len(p) for p in results.values())
            err(f"modelsign: {n} problem(s) found")
    if bad:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="policy", help=_HELP, no_args_is_help=True)
    group.command("schema", help=_SCHEMA_HELP)(schema_command)
    group.command("lint", help=_LINT_HELP, no_args_is_help=True)(lint_command)
    app.add_typer(group, name="policy")
