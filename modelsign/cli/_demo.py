"""``modelsign demo [DIR]``: the whole story, offline, in well under a minute.

A loopback Sigstore (:class:`modelsign.testing.LoopbackSigstore`, in this process) stands in
for the public one, so keyless signing and verification run for real with no network. The demo
builds a small base model and a dataset, signs them, fine-tunes the model (a few real optimizer
steps: torch on CPU when it is installed, else plain-Python gradient descent on a linear model,
and the output says which), attests the derivation, casts the result to float16, attests again,
verifies the chain (signature, claims, lineage and a registry policy), then changes one byte of
the base model and shows the failure. Each step prints the command line that does the same.

Everything here goes through the public modules (``signing``, ``claims``, ``verify``,
``lineage``, ``policy``); the demo owns nothing but the story and the toy model.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from modelsign.errors import InputError, VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.lineage import LineageGraph
    from modelsign.signing import Signer
    from modelsign.testing import LoopbackSigstore
    from modelsign.verify import Identity, Trust

__all__ = ["DemoOutcome", "register", "run_demo"]

_HELP = (
    "Run the whole modelsign story offline, in well under a minute.\n\n"
    "Starts a loopback Sigstore in this process (Fulcio, Rekor and an OIDC issuer on "
    "127.0.0.1; nothing leaves the machine), then: builds a small base model (safetensors) and "
    "a dataset, signs both keylessly, fine-tunes the model (a few real optimizer steps with "
    "torch on CPU when torch is installed, else plain-Python gradient descent on a linear "
    "model, and it says so), attests the derivation, casts the result to float16 and attests "
    "again, verifies the chain (signature, claims, lineage, a registry policy) and prints the "
    "lineage tree, then changes one byte of the base model and shows the failure. Every step "
    "prints the equivalent command.\n\n"
    "The files are kept in DIR (default: a new temporary directory, printed at the start). "
    "They keep verifying against DIR/sigstore/trust_config.json after the demo exits, so the "
    "printed verify and lineage commands can be run again from DIR.\n\n"
    "Examples:\n\n"
    "  modelsign demo\n\n"
    "  modelsign demo ./demo --no-torch\n\n"
    "Exit codes: 0 the chain verified and the changed byte was caught, 1 it was not, 2 DIR is "
    "not empty (or not a directory), 3 internal error.\n"
)

FOUNDATION = "foundation@demo.example"
TRAINER = "trainer@demo.example"
TRUST_CONFIG = "sigstore/trust_config.json"

_IN, _HIDDEN, _OUT = 16, 32, 4
_ROWS = 256
_STEPS = 25


# ----------------------------------------------------------------------------- safetensors
# A tiny writer and reader of the safetensors format (8-byte little-endian header length, a JSON
# header, then raw little-endian tensor bytes), so the demo needs neither numpy nor safetensors.

_DTYPES = {"F32": ("f", 4), "F16": ("e", 2)}


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    values: tuple[float, ...]


def _write_safetensors(path: Path, tensors: dict[str, _Tensor], dtype: str) -> None:
    fmt, _ = _DTYPES[dtype]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        blob = struct.pack(f"<{len(t.values)}{fmt}", *t.values)
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def _read_safetensors(path: Path) -> dict[str, _Tensor]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        fmt, size = _DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        count = (end - start) // size
        out[name] = _Tensor(tuple(info["shape"]),
                            struct.unpack(f"<{count}{fmt}", body[start:end]))
    return out


# ----------------------------------------------------------------------------- the toy world
def _dataset_rows() -> list[dict[str, list[float]]]:
    """Deterministic regression data: y = tanh(W x) for a fixed teacher W."""
    rng = random.Random(20240917)
    teacher = [[rng.gauss(0.0, 0.5) for _ in range(_IN)] for _ in range(_OUT)]
    rows = []
    for _ in range(_ROWS):
        x = [round(rng.uniform(-1.0, 1.0), 6) for _ in range(_IN)]
        y = [round(math.tanh(sum(w * v for w, v in zip(ws, x, strict=True))), 6)
             for ws in teacher]
        rows.append({"x": x, "y": y})
    return rows


def _write_dataset(path: Path) -> None:
    path.mkdir()
    rows = _dataset_rows()
    with open(path / "train.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    (path / "README.md").write_text(
        "# demo-regression\n\nSynthetic regression data for `modelsign demo`: "
        f"{_ROWS} rows of x (float[{_IN}]) and y = tanh(W x) (float[{_OUT}]) for a fixed W.\n",
        encoding="utf-8")


def _read_dataset(path: Path) -> tuple[list[list[float]], list[list[float]]]:
    xs, ys = [], []
    with open(path / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            xs.append(row["x"])
            ys.append(row["y"])
    return xs, ys


def _config(arch: str, dtype: str, **extra: Any) -> str:
    doc = {"architectures": [arch], "model_type": "modelsign-demo", "in_features": _IN,
           "out_features": _OUT, "torch_dtype": dtype, **extra}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


class _Trainer:
    """Builds the base weights and fine-tunes them; two implementations, same files."""

    name: str
    arch: str
    note: str
    optimizer: str
    lr: float

    def base(self) -> dict[str, _Tensor]:
        raise NotImplementedError

    def finetune(self, weights: dict[str, _Tensor], xs: list[list[float]],
                 ys: list[list[float]]) -> tuple[dict[str, _Tensor], float, float]:
        raise NotImplementedError


class _TorchTrainer(_Trainer):
    """A two-layer MLP, AdamW on CPU: real torch optimizer steps."""

    arch = "DemoMLP"
    optimizer = "adamw"
    lr = 0.01

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.name = f"torch {torch.__version__}"
        self.note = f"{_STEPS} AdamW steps with torch {torch.__version__} on CPU"

    def _model(self) -> Any:
        nn = self.torch.nn
        return nn.Sequential(nn.Linear(_IN, _HIDDEN), nn.ReLU(), nn.Linear(_HIDDEN, _OUT))

    @staticmethod
    def _names() -> dict[str, str]:
        return {"0.weight": "fc1.weight", "0.bias": "fc1.bias",
                "2.weight": "fc2.weight", "2.bias": "fc2.bias"}

    def _to_tensors(self, model: Any) -> dict[str, _Tensor]:
        out = {}
        for key, name in self._names().items():
            t = model.state_dict()[key].detach().to(self.torch.float32)
            out[name] = _Tensor(tuple(t.shape), tuple(t.flatten().tolist()))
        return out

    def base(self) -> dict[str, _Tensor]:
        self.torch.manual_seed(0)
        return self._to_tensors(self._model())

    def finetune(self, weights: dict[str, _Tensor], xs: list[list[float]],
                 ys: list[list[float]]) -> tuple[dict[str, _Tensor], float, float]:
        torch = self.torch
        torch.manual_seed(1)
        model = self._model()
        state = {key: torch.tensor(weights[name].values, dtype=torch.float32)
                 .reshape(weights[name].shape) for key, name in self._names().items()}
        model.load_state_dict(state)
        x, y = torch.tensor(xs), torch.tensor(ys)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr)
        loss_fn = torch.nn.MSELoss()
        first = last = 0.0
        for step in range(_STEPS):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if step == 0:
                first = loss.item()
        with torch.no_grad():
            last = loss_fn(model(x), y).item()
        return self._to_tensors(model), first, last


class _PythonTrainer(_Trainer):
    """A linear model y = W x + b, full-batch gradient descent in plain Python (no torch)."""

    name = "plain Python"
    arch = "DemoLinear"
    optimizer = "sgd"
    lr = 0.5

    def __init__(self, reason: str) -> None:
        self.note = (f"{_STEPS} gradient-descent steps in plain Python on a linear model "
                     f"(a stand-in: {reason})")

    def base(self) -> dict[str, _Tensor]:
        rng = random.Random(0)
        w = tuple(round(rng.gauss(0.0, 0.1), 6) for _ in range(_OUT * _IN))
        return {"linear.weight": _Tensor((_OUT, _IN), w),
                "linear.bias": _Tensor((_OUT,), (0.0,) * _OUT)}

    @staticmethod
    def _loss(w: list[list[float]], b: list[float], xs: list[list[float]],
              ys: list[list[float]]) -> tuple[float, list[list[float]]]:
        n = len(xs)
        total = 0.0
        errs = []
        for x, y in zip(xs, ys, strict=True):
            e = [sum(wi * xi for wi, xi in zip(w[o], x, strict=True)) + b[o] - y[o]
                 for o in range(_OUT)]
            total += sum(v * v for v in e)
            errs.append(e)
        return total / (n * _OUT), errs

    def finetune(self, weights: dict[str, _Tensor], xs: list[list[float]],
                 ys: list[list[float]]) -> tuple[dict[str, _Tensor], float, float]:
        flat = weights["linear.weight"].values
        w = [list(flat[o * _IN:(o + 1) * _IN]) for o in range(_OUT)]
        b = list(weights["linear.bias"].values)
        n = len(xs)
        first = 0.0
        for step in range(_STEPS):
            loss, errs = self._loss(w, b, xs, ys)
            if step == 0:
                first = loss
            scale = 2.0 / (n * _OUT)
            for o in range(_OUT):
                grad_b = scale * sum(e[o] for e in errs)
                for i in range(_IN):
                    w[o][i] -= self.lr * scale * sum(e[o] * x[i]
                                                     for e, x in zip(errs, xs, strict=True))
                b[o] -= self.lr * grad_b
        last, _ = self._loss(w, b, xs, ys)
        return ({"linear.weight": _Tensor((_OUT, _IN), tuple(v for row in w for v in row)),
                 "linear.bias": _Tensor((_OUT,), tuple(b))}, first, last)


def _trainer(use_torch: bool) -> _Trainer:
    if not use_torch:
        return _PythonTrainer("--no-torch was given")
    try:
        return _TorchTrainer()
    except ImportError:
        return _PythonTrainer("torch is not installed; pip install torch for real torch steps")


# ----------------------------------------------------------------------------- output
@dataclass
class _Printer:
    out: TextIO
    steps: int
    n: int = 0

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, title: str) -> None:
        self.n += 1
        self.line()
        self.line(f"[{self.n}/{self.steps}] {title}")

    def shell(self, text: str) -> None:
        """Print a shell line as it is (for lines with substitutions)."""
        self.line("  $ " + text)

    def cmd(self, argv: Sequence[str]) -> None:
        """Print a command line, wrapped before each option so it stays readable."""
        words = [shlex.quote(a) for a in argv]
        chunks: list[str] = []
        for w in words:
            if w.startswith("--") and chunks:
                chunks.append(w)
            elif chunks:
                chunks[-1] += " " + w
            else:
                chunks.append(w)
        text = "  $ " + chunks[0]
        width = len(text)
        for c in chunks[1:]:
            if width + 1 + len(c) > 100:
                text += " \\\n      " + c
                width = 6 + len(c)
            else:
                text += " " + c
                width += 1 + len(c)
        self.line(text)

    def note(self, text: str) -> None:
        for i, part in enumerate(text.splitlines() or [""]):
            self.line(("  → " if i == 0 else "    ") + part)

    def block(self, text: str, indent: str = "    ") -> None:
        for part in text.rstrip("\n").splitlines():
            self.line(indent + part)


def _cli_has(command: str, option: str | None = None) -> bool:
    """Whether this installation's CLI has ``modelsign COMMAND [OPTION]`` (so the demo only
    prints commands that exist)."""
    from modelsign.cli._app import app

    group = typer.main.get_command(app)  # typer's own (vendored) click group
    cmd = getattr(group, "commands", {}).get(command)
    if cmd is None:
        return False
    if option is None:
        return True
    return any(option in getattr(p, "opts", ()) for p in cmd.params)


# ----------------------------------------------------------------------------- the story
@dataclass
class DemoOutcome:
    """What the demo showed: the directory, whether each act behaved, and how long it took."""

    directory: Path
    trainer: str
    chain_verified: bool = False
    policy_passed: bool = False
    tamper_caught: bool = False
    seconds: float = 0.0
    roots: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.chain_verified and self.policy_passed and self.tamper_caught


def _prepare(directory: Path | None) -> Path:
    if directory is None:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="modelsign-demo-"))
    if directory.exists():
        if not directory.is_dir():
            raise InputError("the demo directory is not a directory", path=directory,
                             expected="a new or empty directory", actual="a file",
                             hint="pass another DIR, or leave DIR out to use a temporary one")
        if any(directory.iterdir()):
            raise InputError("the demo directory is not empty", path=directory,
                             expected="a new or empty directory",
                             actual=f"{sum(1 for _ in directory.iterdir())} entries",
                             hint="pass a new DIR, or leave DIR out to use a temporary one")
    else:
        try:
            directory.mkdir(parents=True)
        except OSError as e:
            raise InputError(f"cannot create the demo directory: {e.strerror or e}",
                             path=directory, hint="pass a writable DIR") from e
    return directory.resolve()


def _short(hex_digest: str) -> str:
    return f"sha256:{hex_digest[:12]}"


def _sizes(path: Path) -> str:
    return ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)"
                     for p in sorted(path.iterdir()) if p.is_file()
                     and p.name not in ("model.sig", "claims.jsonl"))


def _write_policy(path: Path, *, issuer: str, torch_version: str | None,
                  python_version: str) -> None:
    frameworks = f'  python: ">={python_version}"\n'
    if torch_version is not None:
        frameworks += f'  torch: ">={torch_version}"\n'
    path.write_text(f"""\
# The demo's registry policy: examples/policies/strict-registry.yaml, with the demo's loopback
# Sigstore identities instead of GitHub Actions and Google ones.
#
#   modelsign policy lint policy.yaml
apiVersion: modelsign/v1
kind: ModelPolicy
metadata:
  name: demo-registry
  description: Signed by the trainer, provenance required, signed ancestors, no pickle.

# model.sig: signed by the trainer (keyless, the loopback Sigstore's OIDC issuer)
signers:
  - {{issuer: "{issuer}", identity: {TRAINER}}}

# claims.jsonl: a derivation claim by the same signer, of a relation the registry accepts
requireClaims:
  - predicateType: https://slsa.dev/provenance/v1
    conditions:
      - "predicate.buildDefinition.externalParameters.relation in ['finetune', 'quantized']"

# ancestors: each verified on its own signature, by one of the two publishers. (The demo's
# ancestors are local directories, recorded by name without a URI, so no glob can tell them
# apart; Hub ancestors are pinned one by one, e.g. match: "hf://meta-llama/*".)
lineage:
  maxDepth: 4
  requireSignedParents: true
  allowedRelations: [finetune, quantized]
  parents:
    - match: "*"
      signers:
        - {{issuer: "{issuer}", identity: {FOUNDATION}}}
        - {{issuer: "{issuer}", identity: {TRAINER}}}

frameworks:
{frameworks}
maxAge: 1d
serialization:
  pickle: deny
trustRoot: {{file: {TRUST_CONFIG}}}
""", encoding="utf-8")


def run_demo(directory: Path | None = None, *, use_torch: bool = True,
             out: TextIO | None = None, clock: Callable[[], float] = time.monotonic
             ) -> DemoOutcome:
    """Run the demo in ``directory`` (new or empty; a temporary one when ``None``), printing the
    story to ``out`` (stdout). Returns what it showed; raises :class:`InputError` when the
    directory cannot be used."""
    out = out if out is not None else sys.stdout
    start = clock()
    base_dir = _prepare(directory)
    trainer = _trainer(use_torch)
    p = _Printer(out, steps=9)
    outcome = DemoOutcome(base_dir, trainer.name)

    from modelsign.testing import LoopbackSigstore

    p.line("modelsign demo: sign, attest and verify a model's lineage, offline")
    p.line(f"  directory: {base_dir} (kept; the commands below run from there: "
           f"cd {shlex.quote(str(base_dir))})")
    p.line(f"  training:  {trainer.note}")
    with LoopbackSigstore() as server:
        _story(p, server, base_dir, trainer, outcome)
    outcome.seconds = clock() - start
    p.line()
    if outcome.ok:
        p.line(f"demo finished in {outcome.seconds:.1f} s: the lineage verified, the policy "
               "passed, and the changed byte was caught.")
    else:
        p.line(f"demo finished in {outcome.seconds:.1f} s, but it did not go as it should: "
               f"chain verified={outcome.chain_verified}, policy passed={outcome.policy_passed}, "
               f"tampering caught={outcome.tamper_caught}")
    return outcome


@dataclass(frozen=True)
class _Sigstore:
    """The running loopback Sigstore and what signing and verifying against it need."""

    server: LoopbackSigstore
    trust_config: Path
    trust: Trust

    @property
    def url(self) -> str:
        return self.server.url

    def signer(self, who: str) -> Signer:
        """A keyless signer with a fresh token for ``who`` (no ambient or browser fallback)."""
        from modelsign.signing import KeylessSigner, load_trust_config

        return KeylessSigner(trust_config=load_trust_config(path=self.trust_config),
                             identity_token=self.server.mint_token(who), ambient=False,
                             interactive=False)


def _story(p: _Printer, server: LoopbackSigstore, d: Path, trainer: _Trainer,
           outcome: DemoOutcome) -> None:
    from modelsign.claims import ParentVerifier, attest
    from modelsign.signing import sign_model
    from modelsign.verify import Identity, Trust, verify_model
    from modelsign.verify._claims import verify_claims

    tc_path = server.write_trust_config(d / TRUST_CONFIG)
    sigstore = _Sigstore(server, tc_path, Trust.from_trust_config(tc_path))
    trust = sigstore.trust
    url = sigstore.url
    foundation = Identity(identity=FOUNDATION, issuer=url)
    trainer_id = Identity(identity=TRAINER, issuer=url)
    tc = TRUST_CONFIG
    base, data = d / "base-model", d / "dataset"
    ft, fp16 = d / "finetuned", d / "finetuned-fp16"

    # 1 ------------------------------------------------------------------ Sigstore
    p.step("Start a loopback Sigstore: Fulcio, Rekor and an OIDC issuer on 127.0.0.1")
    p.cmd(["modelsign", "sigstore", "serve", "--dir", "sigstore"])
    p.note(f"serving at {url}; trust config written to {tc}")
    p.line(f"    {FOUNDATION} publishes the base model and the dataset; {TRAINER} the "
           "derived models")

    # 2 ------------------------------------------------------------------ base + dataset
    p.step("Build a base model and a dataset")
    base.mkdir()
    _write_safetensors(base / "model.safetensors", trainer.base(), "F32")
    (base / "config.json").write_text(_config(trainer.arch, "float32"), encoding="utf-8")
    _write_dataset(data)
    p.note(f"base-model/: {_sizes(base)}")
    p.line(f"    dataset/: {_sizes(data)}")

    # 3 ------------------------------------------------------------------ sign them
    p.step(f"Sign both keylessly, as {FOUNDATION}")
    p.shell(_token_line(url, FOUNDATION))
    for path in (base, data):
        p.cmd(["modelsign", "sign", path.name, "--trust-config", tc])
        res = sign_model(path, signer=sigstore.signer(FOUNDATION))
        outcome.roots[path.name] = res.root_digest
        p.note(f"{path.name}/model.sig: sha256:{res.root_digest}\n{res.bundle.describe()}")

    # 4 ------------------------------------------------------------------ fine-tune
    p.step("Fine-tune the base model on the dataset")
    xs, ys = _read_dataset(data)
    started = datetime.now(UTC)
    tuned, first, last = trainer.finetune(_read_safetensors(base / "model.safetensors"), xs, ys)
    finished = datetime.now(UTC)
    ft.mkdir()
    _write_safetensors(ft / "model.safetensors", tuned, "F32")
    (ft / "config.json").write_text(_config(trainer.arch, "float32"), encoding="utf-8")
    p.note(f"{trainer.note}: training loss {first:.4f} → {last:.4f}")
    p.line(f"    finetuned/: {_sizes(ft)}")

    # 5 ------------------------------------------------------------------ attest + sign
    p.step(f"Attest the fine-tune (base model + dataset + frameworks) and sign it, as {TRAINER}")
    p.shell(_token_line(url, TRAINER))
    params: dict[str, str | int | float | bool] = {
        "steps": _STEPS, "optimizer": trainer.optimizer, "lr": trainer.lr, "loss": "mse"}
    p.cmd(["modelsign", "attest", "finetuned", "--relation", "finetune", "--method",
           "full-finetune", *(a for k, v in params.items() for a in ("--param", f"{k}={v}")),
           "--base-model", "base-model", "--dataset", "dataset", "--dataset-split", "train",
           "--parent-identity", FOUNDATION, "--parent-issuer", url,
           "--parent-trust-config", tc, "--trust-config", tc])
    claim = attest(ft, signer=sigstore.signer(TRAINER), relation="finetune",
                   method="full-finetune", params=params, base_models=[base], datasets=[data],
                   dataset_split="train", started_on=started, finished_on=finished,
                   invocation_id="modelsign-demo",
                   parent_verifier=ParentVerifier(identities=[foundation], trust=trust),
                   import_torch=isinstance(trainer, _TorchTrainer))
    view = claim.view
    fw = ", ".join(f"{f.name}=={f.version}" for f in view.frameworks) if view else ""
    p.note(f"finetuned/claims.jsonl line {claim.line}: finetune of base-model "
           f"{_short(outcome.roots['base-model'])} on dataset "
           f"{_short(outcome.roots['dataset'])}\nframeworks: {fw}")
    p.cmd(["modelsign", "sign", "finetuned", "--trust-config", tc])
    res = sign_model(ft, signer=sigstore.signer(TRAINER))
    outcome.roots["finetuned"] = res.root_digest
    p.note(f"finetuned/model.sig: sha256:{res.root_digest}")

    # 6 ------------------------------------------------------------------ fp16 + attest + sign
    p.step("Cast the fine-tune to float16, attest that step and sign the result")
    fp16.mkdir()
    _write_safetensors(fp16 / "model.safetensors", _read_safetensors(ft / "model.safetensors"),
                       "F16")
    (fp16 / "config.json").write_text(_config(trainer.arch, "float16"), encoding="utf-8")
    p.note(f"finetuned-fp16/: {_sizes(fp16)}")
    p.cmd(["modelsign", "attest", "finetuned-fp16", "--relation", "quantized", "--method",
           "fp16-cast", "--base-model", "finetuned", "--parent-identity", TRAINER,
           "--parent-issuer", url, "--parent-trust-config", tc, "--trust-config", tc])
    attest(fp16, signer=sigstore.signer(TRAINER), relation="quantized", method="fp16-cast",
           base_models=[ft], invocation_id="modelsign-demo",
           parent_verifier=ParentVerifier(identities=[trainer_id], trust=trust),
           import_torch=isinstance(trainer, _TorchTrainer))
    p.cmd(["modelsign", "sign", "finetuned-fp16", "--trust-config", tc])
    res = sign_model(fp16, signer=sigstore.signer(TRAINER))
    outcome.roots["finetuned-fp16"] = res.root_digest
    p.note(f"finetuned-fp16/model.sig: sha256:{res.root_digest}")

    # 7 ------------------------------------------------------------------ verify the chain
    p.step("Verify finetuned-fp16: its signature, its claims, and its lineage back to the base")
    p.cmd(["modelsign", "verify", "finetuned-fp16", "--identity", TRAINER, "--issuer", url,
           "--trust-config", tc])
    result = verify_model(fp16, identities=[trainer_id], trust=trust)
    signer = result.signer
    p.note(f"verified sha256:{result.root_digest}: {len(result.files)} file(s) re-hashed, "
           f"signed by {signer.identity} ({signer.issuer}), log index {signer.log_index}")
    claims = verify_claims(fp16, result.root_digest, identities=[trainer_id], trust=trust)
    p.block("\n".join(claims.summary_lines()))
    graph = _lineage(p, d, url, trust, outcome, tc)
    outcome.chain_verified = result.verified and claims.ok and graph.ok

    # 8 ------------------------------------------------------------------ policy
    p.step("Admit it under a registry policy (signer, claims, lineage, frameworks, age, pickle)")
    _policy(p, d, url, outcome, view)

    # 9 ------------------------------------------------------------------ tamper
    p.step("Change one byte of the base model, then verify again")
    _tamper(p, d, url, trust, outcome, tc, foundation)


def _token_line(url: str, who: str) -> str:
    return f'export SIGSTORE_ID_TOKEN="$(modelsign sigstore token --url {url} {who})"'


def _parent_rules(url: str, roots: dict[str, str]) -> list[tuple[str, str]]:
    return [(f"sha256:{roots['base-model']}", FOUNDATION),
            (f"sha256:{roots['dataset']}", FOUNDATION),
            ("*", TRAINER)]


def _ancestor_options(url: str, roots: dict[str, str]) -> list[str]:
    """Where the ancestors are (--upstream) and who may sign each (--parent-identity)."""
    argv: list[str] = []
    for name in ("base-model", "dataset", "finetuned"):
        argv += ["--upstream", f"sha256:{roots[name]}={name}"]
    for pattern, who in _parent_rules(url, roots):
        argv += ["--parent-identity", f"{pattern}={who}@{url}"]
    return argv


def _lineage_argv(url: str, roots: dict[str, str], tc: str, subject: str) -> list[str]:
    return ["modelsign", "lineage", subject, "--identity", TRAINER, "--issuer", url,
            "--trust-config", tc, *_ancestor_options(url, roots)]


def _walk(d: Path, url: str, trust: Trust, roots: dict[str, str]) -> LineageGraph:
    from modelsign.lineage import ParentRule, SignerRule, verify_lineage
    from modelsign.verify import Identity

    rules = [ParentRule(pattern, SignerRule(identities=(Identity(identity=who, issuer=url),)))
             for pattern, who in _parent_rules(url, roots)]
    upstream = {roots[n]: d / n for n in ("base-model", "dataset", "finetuned")}
    return verify_lineage(d / "finetuned-fp16", identities=[Identity(identity=TRAINER,
                                                                     issuer=url)],
                          trust=trust, parents=rules, upstream=upstream)


def _tree(graph: LineageGraph) -> str:
    from modelsign.cli._lineage import tree_text

    return tree_text(graph, width=200)


def _lineage(p: _Printer, d: Path, url: str, trust: Trust, outcome: DemoOutcome,
             tc: str) -> LineageGraph:
    argv = _lineage_argv(url, outcome.roots, tc, "finetuned-fp16")
    if _cli_has("lineage"):
        p.cmd(argv)
    else:
        p.line("  (Python: modelsign.lineage.verify_lineage; this installation's CLI has no "
               "`modelsign lineage` yet)")
    graph = _walk(d, url, trust, outcome.roots)
    p.block(_tree(graph), indent="    ")
    return graph


def _policy(p: _Printer, d: Path, url: str, outcome: DemoOutcome, view: Any) -> None:
    from modelsign.policy import load_policy, verify_with_policy

    versions = {f.name: f.version for f in view.frameworks} if view else {}
    torch_version = versions.get("torch")
    py = versions.get("python", "3.11").split(".")
    policy_path = d / "policy.yaml"
    _write_policy(policy_path, issuer=url,
                  torch_version=(torch_version.split("+")[0] if torch_version else None),
                  python_version=".".join(py[:2]))
    p.note("policy.yaml written (the demo's identities in the shape of "
           "examples/policies/strict-registry.yaml)")
    if _cli_has("policy"):
        p.cmd(["modelsign", "policy", "lint", "policy.yaml"])
    upstream = {outcome.roots[n]: d / n for n in ("base-model", "dataset", "finetuned")}
    if all(_cli_has("verify", o) for o in ("--policy", "--lineage", "--upstream")):
        argv = ["modelsign", "verify", "finetuned-fp16", "--policy", "policy.yaml", "--lineage"]
        for digest, path in upstream.items():
            argv += ["--upstream", f"sha256:{digest}={path.name}"]
        p.cmd(argv)
    else:
        p.line("  (Python: modelsign.policy.verify_with_policy(..., lineage=True); this "
               "installation's `modelsign verify` has no --policy with --lineage)")
    decision = verify_with_policy(d / "finetuned-fp16", load_policy(policy_path), lineage=True,
                                  upstream=dict(upstream))
    p.block(decision.report.to_text())
    outcome.policy_passed = decision.report.passed


def _tamper(p: _Printer, d: Path, url: str, trust: Trust, outcome: DemoOutcome, tc: str,
            foundation: Identity) -> None:
    from modelsign.verify import verify_model

    target = d / "base-model" / "model.safetensors"
    data = bytearray(target.read_bytes())
    offset = len(data) - 1  # the last byte of the last tensor
    old = data[offset]
    data[offset] = old ^ 0x01
    target.write_bytes(bytes(data))
    p.note(f"base-model/model.safetensors byte {offset:,}: 0x{old:02x} → 0x{old ^ 1:02x} "
           "(one bit of one weight)")
    caught_lineage = caught_direct = False
    try:
        p.line("    finetuned-fp16's own signature still verifies (its own bytes did not "
               "change); its lineage does not:")
        if _cli_has("lineage"):
            p.cmd(_lineage_argv(url, outcome.roots, tc, "finetuned-fp16"))
        graph = _walk(d, url, trust, outcome.roots)
        p.block(_tree(graph))
        caught_lineage = not graph.ok and any(n.state == "digest_mismatch"
                                              for n in graph.failures)
        if not graph.ok:
            p.line("  → exit code 1")
        p.line("    and the base model itself, checked on its own:")
        p.cmd(["modelsign", "verify", "base-model", "--identity", FOUNDATION, "--issuer", url,
               "--trust-config", tc])
        try:
            verify_model(d / "base-model", identities=[foundation], trust=trust)
        except VerificationError as e:
            caught_direct = True
            p.block(f"modelsign: error: {e}", indent="    ")
            p.line(f"  → exit code {e.exit_code}")
    finally:
        data[offset] = old
        target.write_bytes(bytes(data))
    p.note("byte restored: every command above verifies again")
    outcome.tamper_caught = caught_lineage and caught_direct


# ----------------------------------------------------------------------------- the command
def demo_command(
    directory: Annotated[Path | None, typer.Argument(
        metavar="[DIR]", help="New or empty directory for the demo's files [default: a new "
        "temporary directory].", show_default=False)] = None,
    no_torch: Annotated[bool, typer.Option(
        "--no-torch", help="Fine-tune with the plain-Python stand-in even when torch is "
        "installed (starts faster).")] = False,
) -> None:
    outcome = run_demo(directory, use_torch=not no_torch)
    if not outcome.ok:
        raise VerificationError(
            "the demo did not show what it should",
            expected="a verified lineage, a passing policy and the changed byte caught",
            actual=(f"chain verified={outcome.chain_verified}, policy passed="
                    f"{outcome.policy_passed}, tampering caught={outcome.tamper_caught}"),
            hint=f"read the output above; the files are in {outcome.directory}")


def register(app: typer.Typer) -> None:
    app.command("demo", help=_HELP)(demo_command)
