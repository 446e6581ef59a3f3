"""The OMS v1.0 statement (model.sig payload), and the v0.1 one older producers wrote."""

from __future__ import annotations

from modelsign.errors import SignatureFormatError
from modelsign.manifest import Manifest, Resource, Serialization, check_resource_name
from modelsign.statements._statement import Statement, make_statement

OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
OMS_V01_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"


def oms_statement(manifest: Manifest) -> Statement:
    """The OMS v1.0 statement for ``manifest``: subject = root digest, canonical bytes."""
    return make_statement(manifest.name, {"sha256": manifest.root_hex}, OMS_PREDICATE_TYPE,
                          manifest.to_predicate())


def manifest_from_statement(st: Statement) -> Manifest:
    """The signed manifest of an OMS statement (v1.0, or v0.1 from older producers).

    Checks that the statement is self-consistent: one subject whose sha256 is the root digest of
    the listed resources. Whether the signature over it holds is the verifier's business.
    """
    if st.predicate_type == OMS_V01_PREDICATE_TYPE:
        return _manifest_v01(st)
    if st.predicate_type != OMS_PREDICATE_TYPE:
        raise SignatureFormatError(
            "this is not a model signature (wrong predicateType)",
            expected=OMS_PREDICATE_TYPE, actual=st.predicate_type[:200],
            hint="claims belong in claims.jsonl; check which file was passed as the signature")
    subject = st.subject
    root = subject.digest.get("sha256")
    if not isinstance(root, str):
        raise SignatureFormatError("subject has no sha256 digest", expected="digest.sha256",
                                   actual=repr(dict(subject.digest))[:100])
    manifest = Manifest.from_predicate(subject.name or "model", st.predicate)
    if manifest.root_hex != root:
        raise SignatureFormatError(
            "statement is inconsistent: the resources do not hash to the subject digest",
            expected=root[:200], actual=manifest.root_hex,
            hint="the signature was not produced by a conforming tool; do not trust it")
    return manifest


def _manifest_v01(st: Statement) -> Manifest:
    """v0.1: one subject per file, sha256 only, no serialization recorded (files, no symlinks)."""
    ser = Serialization("files", "sha256", False, None, ())
    resources = []
    seen: set[str] = set()
    for s in st.subjects:
        check_resource_name(s.name, where="subject name")
        digest = s.digest.get("sha256")
        if digest is None:
            raise SignatureFormatError(f"v0.1 subject {s.name!r} has no sha256 digest",
                                       actual=repr(dict(s.digest))[:100])
        if s.name in seen:
            raise SignatureFormatError(f"duplicate subject {s.name!r}", expected="each file once",
                                       actual="twice")
        seen.add(s.name)
        resources.append(Resource.parse(s.name, "sha256", digest, method="files"))
    return Manifest.build("model", ser, resources)
