"""Policies: what a registry (or a careful consumer) admits, as a file, with reasons.

A policy file (YAML, ``apiVersion: modelsign/v1``, ``kind: ModelPolicy``) says who must have
signed the model, which claims must exist and what they must say, which datasets, lineage and
framework versions are acceptable, how old a signature may be and whether pickle files are
allowed, plus CEL conditions for the rest. It is judged only over facts the verifier verified::

    from modelsign.policy import load_policy, verify_with_policy

    policy = load_policy("registry.yaml")             # PolicyFileError (exit 2) if bad
    outcome = verify_with_policy("my-model", policy)   # verify_model + verify_claims + evaluate
    print(outcome.report.to_text())
    exit_code = 0 if outcome.report.passed else 1

or, step by step, ``evaluate(policy, build_facts(verify_model(...), claims=verify_claims(...),
lineage=...))``.

Pure: evaluation never signs, never fetches, and reads time only through ``clock=``.
"""

from modelsign.policy._cel import CelError
from modelsign.policy._evaluate import evaluate
from modelsign.policy._facts import Facts, build_facts
from modelsign.policy._load import LintProblem, Policy, lint_policy, load_policy, parse_policy
from modelsign.policy._model import PolicyDocument, SignerRule, policy_json_schema
from modelsign.policy._report import PolicyReport, RuleResult, RuleStatus, report_json_schema
from modelsign.policy._run import PolicyVerification, verify_with_policy

__all__ = [
    "CelError",
    "Facts",
    "LintProblem",
    "Policy",
    "PolicyDocument",
    "PolicyReport",
    "PolicyVerification",
    "RuleResult",
    "RuleStatus",
    "SignerRule",
    "build_facts",
    "evaluate",
    "lint_policy",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
    "report_json_schema",
    "verify_with_policy",
]
