#!/usr/bin/env python3
"""Generates every client's policy code from proto/shipgate/v1/client_policy.json.

The policy (default limits, the idempotent methods, the reasons of the failures a client makes
itself, the retry rule) is written once, next to the contract; this script turns it into C,
Python, Go and TypeScript, so that the four clients cannot drift apart.

    gen_policy.py c DIR          DIR/sgc_policy.h and DIR/sgc_policy.c (CMake, into the build tree)
    gen_policy.py python FILE    e.g. clients/python/shipgate/_gen/policy.py
    gen_policy.py go FILE        clients/go/policy_gen.go (committed)
    gen_policy.py node FILE      e.g. clients/node/src/gen/policy.ts
    gen_policy.py check          checks the policy against the contract, that every language
                                 generates, and that the committed Go file is up to date

Options (before the command): --policy FILE (default proto/shipgate/v1/client_policy.json),
--proto DIR (default proto/). A file is written only when its contents change. Standard library
only. Exit status: 0, or 1 with the reason on stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SOURCE = "proto/shipgate/v1/client_policy.json"
KINDS = ("idempotent", "keyed", "other")
DECISIONS = ("stop", "retry", "outcome_unknown")
RULE_KEYS = {"sent", "calls", "from", "codes", "reasons", "fleet", "then", "why"}


class PolicyError(Exception):
    pass


# ------------------------------------------------------------------ reading and checking


def contract(proto_dir: str) -> Tuple[List[str], Dict[str, int]]:
    """The methods of service shipgate.v1.Shipgate and the values of enum shipgate.v1.Code."""
    with open(os.path.join(proto_dir, "shipgate/v1/shipgate.proto"), encoding="utf-8") as f:
        svc = re.search(r"service\s+Shipgate\s*\{(.*?)\}", f.read(), re.S)
    with open(os.path.join(proto_dir, "shipgate/v1/rpc.proto"), encoding="utf-8") as f:
        enum = re.search(r"enum\s+Code\s*\{(.*?)\}", f.read(), re.S)
    if svc is None or enum is None:
        raise PolicyError("cannot find service Shipgate / enum Code in the contract")
    methods = re.findall(r"\brpc\s+(\w+)\s*\(", svc.group(1))
    codes = {n: int(v) for n, v in re.findall(r"\b([A-Z_]+)\s*=\s*(\d+)\s*;", enum.group(1))}
    return methods, codes


def load(policy_path: str, proto_dir: str) -> Dict[str, Any]:
    with open(policy_path, encoding="utf-8") as f:
        try:
            p = json.load(f, object_pairs_hook=_no_duplicates)
        except ValueError as e:
            raise PolicyError(f"{policy_path}: {e}") from None
    methods, codes = contract(proto_dir)
    p["_codes"] = codes

    for k, d in p["defaults"].items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", k) or not isinstance(d.get("value"), int) or d["value"] < 0:
            raise PolicyError(f"defaults.{k}: want a lower_case name with a non-negative integer value")
        if not d.get("doc"):
            raise PolicyError(f"defaults.{k}: no doc")
    for m in p["idempotent_methods"]["methods"]:
        if m not in methods:
            raise PolicyError(f"idempotent_methods: {m} is not a method of shipgate.v1.Shipgate {methods}")
    seen = set()
    for r in p["local_reasons"]:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", r["reason"]) or r["reason"] in seen:
            raise PolicyError(f"local_reasons: bad or repeated reason {r['reason']!r}")
        seen.add(r["reason"])
        if r["code"] not in codes or not isinstance(r["retryable"], bool) or not r.get("doc"):
            raise PolicyError(f"local_reasons.{r['reason']}: want a Code name, retryable and doc")
    for i, rule in enumerate(p["retry"]["rules"]):
        where = f"retry.rules[{i}]"
        if set(rule) - RULE_KEYS:
            raise PolicyError(f"{where}: unknown keys {sorted(set(rule) - RULE_KEYS)}")
        if rule.get("then") not in DECISIONS or not rule.get("why"):
            raise PolicyError(f"{where}: want then in {DECISIONS} and a why")
        for b in ("sent", "fleet"):
            if b in rule and not isinstance(rule[b], bool):
                raise PolicyError(f"{where}: {b} is true or false")
        if "from" in rule and rule["from"] not in ("client", "gateway"):
            raise PolicyError(f"{where}: from is client or gateway")
        for k in rule.get("calls", []):
            if k not in KINDS:
                raise PolicyError(f"{where}: calls are among {KINDS}")
        for c in rule.get("codes", []):
            if c not in codes:
                raise PolicyError(f"{where}: {c} is not a shipgate.v1.Code")
        for r in rule.get("reasons", []):
            if r not in seen:
                raise PolicyError(f"{where}: {r} is not in local_reasons")
            if rule.get("from") != "client":
                raise PolicyError(f"{where}: reasons need from: client (they are the client's own)")
    fl = p.get("fleet")
    if not isinstance(fl, dict) or not fl.get("doc") or not isinstance(fl.get("unsettled_codes"), list):
        raise PolicyError("fleet: want a doc and unsettled_codes")
    for c in fl["unsettled_codes"]:
        if c not in codes:
            raise PolicyError(f"fleet.unsettled_codes: {c} is not a shipgate.v1.Code")
    if "OUTCOME_UNKNOWN" not in seen:
        raise PolicyError("local_reasons: OUTCOME_UNKNOWN is needed by the outcome_unknown decision")
    return p


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def lines(doc: Any) -> List[str]:
    return doc if isinstance(doc, list) else [doc]


def wrap(text: str, width: int) -> List[str]:
    out, cur = [], ""
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > width:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        out.append(cur)
    return out or [""]


def camel(name: str) -> str:
    return "".join(w.capitalize() for w in name.lower().split("_"))


def lower_camel(name: str) -> str:
    c = camel(name)
    return c[0].lower() + c[1:]


# ------------------------------------------------------------------ rule conditions


def conditions(rule: Dict[str, Any], lang: Dict[str, Any], codes: Dict[str, int]) -> List[str]:
    """The tests of one rule, in a language described by `lang`."""
    out = []
    if "sent" in rule:
        out.append(lang["sent"] if rule["sent"] else lang["not"](lang["sent"]))
    if "calls" in rule:
        out.append(lang["any"]([lang["kind"](k) for k in rule["calls"]]))
    if "from" in rule:
        out.append(lang["local"] if rule["from"] == "client" else lang["not"](lang["local"]))
    if "codes" in rule:
        out.append(lang["any"]([lang["code"](c, codes[c]) for c in rule["codes"]]))
    if "reasons" in rule:
        out.append(lang["any"]([lang["reason"](r) for r in rule["reasons"]]))
    if "fleet" in rule:
        out.append(lang["fleet"] if rule["fleet"] else lang["not"](lang["fleet"]))
    return out


def unsettled_codes(p: Dict[str, Any]) -> List[Tuple[str, int]]:
    return [(c, p["_codes"][c]) for c in p["fleet"]["unsettled_codes"]]


# ------------------------------------------------------------------ C


def c_comment(text: str, indent: str) -> List[str]:
    ws = wrap(text, 92 - 8 * len(indent))
    if len(ws) == 1:
        return [f"{indent}/* {ws[0]} */"]
    return [f"{indent}/* {ws[0]}"] + [f"{indent} * {w}" for w in ws[1:]] + [f"{indent} */"]


def gen_c(p: Dict[str, Any]) -> Dict[str, str]:
    codes = p["_codes"]
    banner = f"/* Generated by clients/gen_policy.py from {SOURCE}; do not edit. */\n"
    h = [banner.rstrip(), "#ifndef SGC_POLICY_H", "#define SGC_POLICY_H", "",
         "#include <stdbool.h>", "#include <stddef.h>", "#include <stdint.h>", ""]
    h.append("/* ---- defaults ---- */")
    for k, d in p["defaults"].items():
        h += c_comment(d["doc"], "")
        h.append(f"#define SGC_DEFAULT_{k.upper()} {d['value']}")
    h += ["", "/* ---- reasons of the failures the client makes itself (local) ---- */"]
    for r in p["local_reasons"]:
        h += c_comment(f"{r['code']}: {r['doc']}", "")
        h.append(f"#define SGC_REASON_{r['reason']} \"{r['reason']}\"")
    h += ["",
          "/* A local reason with its usual code and retryability. */",
          "typedef struct sgc_local_reason {",
          "\tconst char *reason; /* SGC_REASON_* */",
          "\tint code;           /* gRPC code (shipgate.v1.Code) */",
          "\tbool retryable;     /* ErrorDetail.retryable */",
          "} sgc_local_reason;", "",
          "/* Every local reason; sgc_n_local_reasons entries. */",
          "extern const sgc_local_reason sgc_local_reasons[];",
          "extern const size_t sgc_n_local_reasons;", "",
          "/* " + p["idempotent_methods"]["doc"] + " */",
          "extern const char *const sgc_idempotent_methods[];",
          "extern const size_t sgc_n_idempotent_methods;", "",
          "/* What a call is, for the retry rule. */",
          "typedef enum sgc_call_kind {",
          "\tSGC_KIND_IDEMPOTENT, /* its method is idempotent */",
          "\tSGC_KIND_KEYED,      /* another method, with an idempotency key */",
          "\tSGC_KIND_OTHER,      /* another method, without a key */",
          "} sgc_call_kind;", "",
          "/* What follows a failed attempt. */",
          "typedef enum sgc_decision {",
          "\tSGC_STOP,            /* report the failure as it is */",
          "\tSGC_RETRY,           /* try again, when attempts and budget are left */",
          "\tSGC_OUTCOME_UNKNOWN, /* report UNKNOWN / OUTCOME_UNKNOWN instead, and stop */",
          "} sgc_decision;", ""]
    h.append("/*")
    for t in lines(p["retry"]["doc"]):
        h.append(f" * {t}".rstrip())
    h += [" *",
          " * sgc_policy_decide applies the rules to a failed attempt: kind of call, whether the request",
          " * may have left the client, whether the failure is local, its code and reason (may be NULL),",
          " * whether the attempt went to a gateway of a fleet.",
          " */",
          "sgc_decision sgc_policy_decide(sgc_call_kind kind, bool sent, bool local, int code,",
          "                               const char *reason, bool fleet);", "",
          "/*"] + [f" * {t}".rstrip() for t in lines(p["fleet"]["doc"])] + [
          " *",
          " * sgc_policy_unsettled: whether the final failure (local, code) of a keyed call, one of whose",
          " * attempts may have been sent, must be reported as UNKNOWN / OUTCOME_UNKNOWN.",
          " */",
          "bool sgc_policy_unsettled(bool local, int code);", "",
          "/* The deadline_ms an attempt with budget_ms left sends (see SGC_DEFAULT_REPLY_MARGIN_MS). */",
          "int64_t sgc_policy_sent_deadline(int64_t budget_ms);", "",
          "#endif /* SGC_POLICY_H */", ""]

    lang = {
        "sent": "sent",
        "local": "local",
        "not": lambda e: f"!{e}",
        "any": lambda es: es[0] if len(es) == 1 else "(" + " || ".join(es) + ")",
        "kind": lambda k: f"kind == SGC_KIND_{k.upper()}",
        "code": lambda c, n: f"code == {n} /* {c} */",
        "reason": lambda r: f"same(reason, SGC_REASON_{r})",
        "fleet": "fleet",
    }
    c = [banner.rstrip(), '#include "sgc_policy.h"', "", "#include <string.h>", "",
         "const sgc_local_reason sgc_local_reasons[] = {"]
    for r in p["local_reasons"]:
        c.append(f"        {{SGC_REASON_{r['reason']}, {codes[r['code']]} /* {r['code']} */, "
                 f"{'true' if r['retryable'] else 'false'}}},")
    c += ["};", "const size_t sgc_n_local_reasons = sizeof(sgc_local_reasons) / sizeof(sgc_local_reasons[0]);", "",
          "const char *const sgc_idempotent_methods[] = {"]
    c += [f"        \"{m}\"," for m in p["idempotent_methods"]["methods"]]
    c += ["};",
          "const size_t sgc_n_idempotent_methods =",
          "        sizeof(sgc_idempotent_methods) / sizeof(sgc_idempotent_methods[0]);", "",
          "static bool", "same(const char *a, const char *b)", "{",
          "\treturn a != NULL && strcmp(a, b) == 0;", "}", "",
          "sgc_decision",
          "sgc_policy_decide(sgc_call_kind kind, bool sent, bool local, int code, const char *reason,",
          "                  bool fleet)",
          "{",
          "\t(void)kind;", "\t(void)sent;", "\t(void)local;", "\t(void)code;", "\t(void)reason;",
          "\t(void)fleet;"]
    for rule in p["retry"]["rules"]:
        conds = conditions(rule, lang, codes)
        c += c_comment(rule["why"], "\t")
        c.append(f"\tif ({' && '.join(conds) if conds else 'true'})")
        c.append(f"\t\treturn SGC_{rule['then'].upper()};")
    c += ["\treturn SGC_STOP;", "}", "",
          "bool", "sgc_policy_unsettled(bool local, int code)", "{",
          "\treturn local || " + " || ".join(f"code == {n} /* {c} */" for c, n in unsettled_codes(p)) + ";",
          "}", "",
          "int64_t", "sgc_policy_sent_deadline(int64_t budget_ms)", "{",
          "\tint64_t margin = budget_ms / 5;", "",
          "\tif (margin > SGC_DEFAULT_REPLY_MARGIN_MS)",
          "\t\tmargin = SGC_DEFAULT_REPLY_MARGIN_MS;",
          "\treturn budget_ms - (margin > 0 ? margin : 0);", "}", ""]
    return {"sgc_policy.h": "\n".join(h), "sgc_policy.c": "\n".join(c)}


# ------------------------------------------------------------------ Python


def gen_python(p: Dict[str, Any]) -> str:
    codes = p["_codes"]
    o = [f'"""The client policy, generated by clients/gen_policy.py from {SOURCE}; do not edit,',
         'do not commit (clients/python/generate.sh writes it)."""', "",
         "from __future__ import annotations", "", "from typing import Dict, FrozenSet, Optional, Tuple", ""]
    for k, d in p["defaults"].items():
        o += [f"#: {w}" for w in wrap(d["doc"], 92)]
        o.append(f"DEFAULT_{k.upper()} = {d['value']}")
    o += ["", "#: " + p["idempotent_methods"]["doc"],
          "IDEMPOTENT_METHODS: FrozenSet[str] = frozenset({" +
          ", ".join(f'"{m}"' for m in p["idempotent_methods"]["methods"]) + "})", ""]
    for r in p["local_reasons"]:
        o += [f"#: {w}" for w in wrap(f"{r['code']}: {r['doc']}", 92)]
        o.append(f'REASON_{r["reason"]} = "{r["reason"]}"')
    o += ["", "#: reason -> (usual code, retryable)", "LOCAL_REASONS: Dict[str, Tuple[int, bool]] = {"]
    o += [f'    "{r["reason"]}": ({codes[r["code"]]}, {r["retryable"]}),' for r in p["local_reasons"]]
    o += ["}", "",
          "# kinds of call", 'IDEMPOTENT = "idempotent"', 'KEYED = "keyed"', 'OTHER = "other"', "",
          "# decisions", 'STOP = "stop"', 'RETRY = "retry"', 'OUTCOME_UNKNOWN = "outcome_unknown"', "", ""]
    lang = {
        "sent": "sent",
        "local": "local",
        "not": lambda e: f"not {e}",
        "any": lambda es: es[0] if len(es) == 1 else "(" + " or ".join(es) + ")",
        "kind": lambda k: f"kind == {k.upper()}",
        "code": lambda c, n: f"code == {n}",
        "reason": lambda r: f"reason == REASON_{r}",
        "fleet": "fleet",
    }
    o += ["def decide(kind: str, sent: bool, local: bool, code: int, reason: Optional[str],",
          "           fleet: bool = False) -> str:",
          '    """What follows a failed attempt: STOP, RETRY or OUTCOME_UNKNOWN.', ""]
    o += [f"    {t}".rstrip() for t in lines(p["retry"]["doc"])]
    o += ['    """']
    for rule in p["retry"]["rules"]:
        conds = conditions(rule, lang, codes)
        o += [f"    # {w}" for w in wrap(rule["why"], 88)]
        o.append(f"    if {' and '.join(conds) if conds else 'True'}:")
        o.append(f"        return {rule['then'].upper()}")
    o += ["    return STOP", "", "",
          "#: gateway codes that do not settle a keyed call one of whose attempts may have been sent",
          "UNSETTLED_CODES: FrozenSet[int] = frozenset({" + ", ".join(str(n) for _, n in unsettled_codes(p)) + "})",
          "", "",
          "def unsettled(local: bool, code: int) -> bool:",
          '    """Whether the final failure of a keyed call, one of whose attempts may have been sent,',
          '    is reported as UNKNOWN / OUTCOME_UNKNOWN.', ""]
    o += [f"    {t}".rstrip() for t in lines(p["fleet"]["doc"])]
    o += ['    """', "    return local or code in UNSETTLED_CODES", "", "",
          "def sent_deadline_ms(budget_ms: int) -> int:",
          '    """The deadline_ms an attempt with budget_ms left sends (DEFAULT_REPLY_MARGIN_MS)."""',
          "    return budget_ms - max(0, min(DEFAULT_REPLY_MARGIN_MS, budget_ms // 5))", ""]
    return "\n".join(o)


# ------------------------------------------------------------------ Go


def gen_go(p: Dict[str, Any]) -> str:
    codes = p["_codes"]
    o = [f"// Code generated by clients/gen_policy.py from {SOURCE}. DO NOT EDIT.", "",
         "package shipgate", "", "// The client policy's defaults, in milliseconds or bytes.", "const ("]
    for k, d in p["defaults"].items():
        o += [f"\t// {w}" for w in wrap(d["doc"], 92)]
        o.append(f"\tpolicy{camel(k)} = {d['value']}")
    o += [")", "", "// Reasons of the failures the client makes itself (Error.Local is true for these).", "const ("]
    for r in p["local_reasons"]:
        o += [f"\t// {w}" for w in wrap(f"{r['code']}: {r['doc']}", 92)]
        o.append(f'\tReason{camel(r["reason"])} = "{r["reason"]}"')
    o += [")", "", "// " + p["idempotent_methods"]["doc"] + ".",
          "var policyIdempotentMethods = []string{" +
          ", ".join(f'"{m}"' for m in p["idempotent_methods"]["methods"]) + "}", "",
          "// policyLocalReason is a local reason's usual code and retryability.",
          "type policyLocalReason struct {", "\tcode      Code", "\tretryable bool", "}", "",
          "var policyLocalReasons = map[string]policyLocalReason{"]
    width = max(len(camel(r["reason"])) for r in p["local_reasons"]) + len("Reason") + 1
    o += [f'\t{("Reason" + camel(r["reason"]) + ":").ljust(width)} '
          f'{{{codes[r["code"]]}, {str(r["retryable"]).lower()}}},' for r in p["local_reasons"]]
    o += ["}", "",
          "// callKind is what a call is, for the retry rule.", "type callKind int", "", "const (",
          "\tkindIdempotent callKind = iota // its method is idempotent",
          "\tkindKeyed                      // another method, with an idempotency key",
          "\tkindOther                      // another method, without a key", ")", "",
          "// decision is what follows a failed attempt.", "type decision int", "", "const (",
          "\tdecideStop           decision = iota // report the failure as it is",
          "\tdecideRetry                          // try again, when attempts and budget are left",
          "\tdecideOutcomeUnknown                 // report UNKNOWN / OUTCOME_UNKNOWN instead, and stop",
          ")", ""]
    lang = {
        "sent": "sent",
        "local": "local",
        "not": lambda e: f"!{e}",
        "any": lambda es: es[0] if len(es) == 1 else "(" + " || ".join(es) + ")",
        "kind": lambda k: f"kind == kind{camel(k)}",
        "code": lambda c, n: f"code == {n}",
        "reason": lambda r: f"reason == Reason{camel(r)}",
        "fleet": "fleet",
    }
    o += ["// policyDecide applies the retry rules to a failed attempt.", "//"]
    o += [f"// {t}".rstrip() for t in lines(p["retry"]["doc"])]
    o += ["func policyDecide(kind callKind, sent, local bool, code Code, reason string, fleet bool) decision {"]
    for rule in p["retry"]["rules"]:
        conds = conditions(rule, lang, codes)
        o += [f"\t// {w}" for w in wrap(rule["why"], 88)]
        o.append(f"\tif {' && '.join(conds) if conds else 'true'} {{")
        o.append(f"\t\treturn decide{camel(rule['then'])}")
        o.append("\t}")
    o += ["\treturn decideStop", "}", "",
          "// policyUnsettled reports whether the final failure of a keyed call, one of whose attempts",
          "// may have been sent, is reported as UNKNOWN / OUTCOME_UNKNOWN.", "//"]
    # gofmt's doc-comment form of a list: "  - item", continuation lines under the item's text
    o += [f"// {'  ' + t if t.startswith(('- ', '  ')) else t}".rstrip() for t in lines(p["fleet"]["doc"])]
    o += ["func policyUnsettled(local bool, code Code) bool {",
          "\treturn local || " + " || ".join(f"code == {n}" for _, n in unsettled_codes(p)),
          "}", "",
          "// policySentDeadlineMs is the deadline_ms an attempt with budgetMs left sends",
          "// (policyReplyMarginMs).",
          "func policySentDeadlineMs(budgetMs int64) int64 {",
          "\tmargin := budgetMs / 5", "\tif margin > policyReplyMarginMs {", "\t\tmargin = policyReplyMarginMs",
          "\t}", "\tif margin < 0 {", "\t\tmargin = 0", "\t}", "\treturn budgetMs - margin", "}", ""]
    return "\n".join(o)


# ------------------------------------------------------------------ Node (TypeScript)


def gen_node(p: Dict[str, Any]) -> str:
    codes = p["_codes"]
    o = [f"// The client policy, generated by clients/gen_policy.py from {SOURCE}; do not edit,",
         "// do not commit (clients/node/generate.sh writes it).", "",
         "/** The policy's defaults, in milliseconds or bytes. */", "export const PolicyDefaults = {"]
    for k, d in p["defaults"].items():
        o.append(f"  /** {d['doc']} */")
        o.append(f"  {lower_camel(k)}: {d['value']},")
    o += ["} as const;", "", f"/** {p['idempotent_methods']['doc']} */",
          "export const IDEMPOTENT_METHODS: readonly string[] = [" +
          ", ".join(f'"{m}"' for m in p["idempotent_methods"]["methods"]) + "];", "",
          "/** Reasons of the failures the client makes itself (ShipgateError.local is true for these). */",
          "export const LocalReason = {"]
    for r in p["local_reasons"]:
        o.append(f"  /** {r['code']}: {r['doc']} */")
        o.append(f'  {r["reason"]}: "{r["reason"]}",')
    o += ["} as const;", "",
          "/** A local reason's usual code and retryability. */",
          "export const LOCAL_REASONS: Readonly<Record<string, { code: number; retryable: boolean }>> = {"]
    o += [f'  {r["reason"]}: {{ code: {codes[r["code"]]}, retryable: {str(r["retryable"]).lower()} }},'
          for r in p["local_reasons"]]
    o += ["};", "",
          "/** What a call is, for the retry rule. */",
          'export type CallKind = "idempotent" | "keyed" | "other";', "",
          "/** What follows a failed attempt. */",
          'export type Decision = "stop" | "retry" | "outcome_unknown";', ""]
    lang = {
        "sent": "sent",
        "local": "local",
        "not": lambda e: f"!{e}",
        "any": lambda es: es[0] if len(es) == 1 else "(" + " || ".join(es) + ")",
        "kind": lambda k: f'kind === "{k}"',
        "code": lambda c, n: f"code === {n}",
        "reason": lambda r: f'reason === "{r}"',
        "fleet": "fleet",
    }
    o += ["/**", " * Applies the retry rules to a failed attempt.", " *"]
    o += [f" * {t}".rstrip() for t in lines(p["retry"]["doc"])]
    o += [" */",
          "export function decide(kind: CallKind, sent: boolean, local: boolean, code: number, reason: string | undefined, fleet = false): Decision {"]
    for rule in p["retry"]["rules"]:
        conds = conditions(rule, lang, codes)
        o += [f"  // {w}" for w in wrap(rule["why"], 88)]
        o.append(f"  if ({' && '.join(conds) if conds else 'true'}) return \"{rule['then']}\";")
    o += ['  return "stop";', "}", "", "/**",
          " * Whether the final failure of a keyed call, one of whose attempts may have been sent, is",
          " * reported as UNKNOWN / OUTCOME_UNKNOWN.", " *"]
    o += [f" * {t}".rstrip() for t in lines(p["fleet"]["doc"])]
    o += [" */", "export function unsettled(local: boolean, code: number): boolean {",
          "  return local || " + " || ".join(f"code === {n}" for _, n in unsettled_codes(p)) + ";",
          "}", "",
          "/** The deadline_ms an attempt with budgetMs left sends (PolicyDefaults.replyMarginMs). */",
          "export function sentDeadlineMs(budgetMs: number): number {",
          "  return budgetMs - Math.max(0, Math.min(PolicyDefaults.replyMarginMs, Math.floor(budgetMs / 5)));",
          "}", ""]
    return "\n".join(o)


# ------------------------------------------------------------------ main


def write(path: str, text: str, force: bool = False) -> None:
    """Writes text to path when it differs (always with force: a build rule's output must be
    newer than its inputs)."""
    try:
        if force:
            raise FileNotFoundError
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: List[str]) -> int:
    policy = os.path.join(REPO, SOURCE)
    proto = os.path.join(REPO, "proto")
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--policy" and args:
            policy = args.pop(0)
        elif opt == "--proto" and args:
            proto = args.pop(0)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if not args or args[0] not in ("c", "python", "go", "node", "check") or \
            (args[0] != "check" and len(args) != 2):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        p = load(policy, proto)
        cmd = args[0]
        if cmd == "c":
            for name, text in gen_c(p).items():
                write(os.path.join(args[1], name), text, force=True)
        elif cmd == "python":
            write(args[1], gen_python(p))
        elif cmd == "go":
            write(args[1], gen_go(p))
        elif cmd == "node":
            write(args[1], gen_node(p))
        else:
            gen_c(p), gen_python(p), gen_node(p)
            go_file = os.path.join(HERE, "go", "policy_gen.go")
            try:
                with open(go_file, encoding="utf-8") as f:
                    have = f.read()
            except FileNotFoundError:
                have = None
            if have != gen_go(p):
                print(f"gen_policy.py check: {os.path.relpath(go_file, REPO)} is missing or stale; "
                      "run clients/generate", file=sys.stderr)
                return 1
            print(f"gen_policy.py check: {SOURCE} matches the contract; "
                  "clients/go/policy_gen.go is up to date", file=sys.stderr)
    except (PolicyError, OSError, KeyError, TypeError) as e:
        print(f"gen_policy.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
