#!/usr/bin/python3
"""Checks recorded HTTP exchanges with a real daemon against docs/openapi.yaml.

    /usr/bin/python3 tests/e2e/openapi_check.py docs/openapi.yaml exchanges.json [--mutations]

Run by tests/e2e/openapi_test.cpp; needs python3-yaml and python3-jsonschema (deploy/setup.sh).
exchanges.json is an array of
    {"method", "target" (path and query, as sent), "role" (admin|operator|billing|auditor|none|bad),
     "request_headers": {name: value}, "request_body": str,
     "expect": "request_invalid" (optional: the documented requestBody schema must refuse the body),
     "status", "content_type", "response_headers": {name: value}, "body": str}

It fails (exit 1, every finding listed) when
  - the document is not an OpenAPI 3.1 document as far as can be checked offline: the shape of
    paths, operations, parameters, request bodies and responses; every $ref resolves; every
    schema is a valid JSON Schema 2020-12 (check_schema); operationIds are unique;
  - an exchange's route (method and path, matched like the daemon's router: literal segments
    beat {params}) is not in the document, or its status is not documented for the operation
    (a path the document does not know must be 404 not_found; a known path with an undocumented
    method 405 method_not_allowed, whose Allow must list exactly the documented methods);
  - a response's Content-Type, required headers or body does not match the documented response;
  - a request that succeeded (2xx) sent a path parameter, query parameter, header parameter or
    body the document does not describe or whose schema refuses it; a query parameter the
    document does not list is always an error;
  - a role got 403 although `x-roles` lists it, or passed the role check although it does not;
  - a documented operation was never exercised, or a documented status never seen unless the
    response says `x-untested: why` (and one marked so that was seen is an error too);
  - GET /v1/openapi.json did not serve exactly this document, or info.version is not the
    daemon's version (mqledger_build_info in /metrics).
With --mutations it also proves that every field the document describes was seen: for every
closed object schema in components/schemas that the recorded responses use, deleting any one of
its properties must make a recorded response fail validation.
"""
import copy
import json
import re
import sys
import urllib.parse
from datetime import datetime

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROLES = ("admin", "operator", "billing", "auditor")
BEFORE_AUTH = {400, 401, 403, 413}   # answered before (or by) the role check

problems = []


def problem(msg):
    problems.append(msg)


# ---- formats: RFC 3339 date-time, checked here (jsonschema's own checker needs extra packages) ----
format_checker = FormatChecker(formats=())
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@format_checker.checks("date-time")
def is_date_time(value):
    if not isinstance(value, str):
        return True
    m = RFC3339.match(value)
    if not m:
        return False
    try:
        datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6)))
    except ValueError:
        return False
    return True


# ---- the document ----
def resolve(doc, node):
    """Follows $ref (local only) until a node without one."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node and not node["$ref"].startswith("#/components/schemas"):
        ref = node["$ref"]
        if ref in seen:
            raise ValueError("$ref cycle at " + ref)
        seen.add(ref)
        node = pointer(doc, ref)
    return node


def pointer(doc, ref):
    if not ref.startswith("#/"):
        raise ValueError("only local $ref are used: " + ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise KeyError(ref)
        node = node[part]
    return node


def walk_refs(doc, node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                try:
                    pointer(doc, v)
                except (KeyError, ValueError) as e:
                    problem("document: %s: $ref %s does not resolve (%s)" % (where, v, e))
            else:
                walk_refs(doc, v, where + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(doc, v, "%s/%d" % (where, i))


_validators = {}


def schema_validator(doc, schema):
    """A validator of `schema` whose $refs resolve against the whole document (cached per schema)."""
    key = (id(doc), id(schema))
    v = _validators.get(key)
    if v is None:
        root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/x-subject",
                "components": doc["components"], "x-subject": schema}
        v = _validators[key] = (Draft202012Validator(root, format_checker=format_checker), doc, schema)
    return v[0]


def check_schema(schema, where):
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        problem("document: %s: not a valid JSON Schema 2020-12: %s" % (where, e.message))


def template_params(path):
    return re.findall(r"\{([^}/]+)\}", path)


def operations(doc):
    for path, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                yield path, m, item[m]


def check_document(doc):
    if doc.get("openapi") != "3.1.0":
        problem("document: openapi must be 3.1.0")
    info = doc.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str) or not isinstance(info.get("version"), str):
        problem("document: info needs a title and a version (strings)")
    allowed_top = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components", "security",
                   "tags", "externalDocs"}
    for k in doc:
        if k not in allowed_top and not k.startswith("x-"):
            problem("document: unknown top-level field " + k)
    walk_refs(doc, doc, "#")
    comps = doc.get("components", {})
    schemes = comps.get("securitySchemes", {})
    for name, s in comps.get("schemas", {}).items():
        check_schema(s, "#/components/schemas/" + name)
    tags = {t["name"] for t in doc.get("tags", [])}
    for req in doc.get("security", []):
        for name in req:
            if name not in schemes:
                problem("document: security names an undefined scheme " + name)
    ids = {}
    for path in doc["paths"]:
        if not path.startswith("/"):
            problem("document: path %s must start with /" % path)
    for path, item in doc["paths"].items():
        for k in item:
            if k not in METHODS and k not in ("parameters", "summary", "description", "servers", "$ref") \
                    and not k.startswith("x-"):
                problem("document: %s: unknown path item field %s" % (path, k))
        for method, op in ((m, item[m]) for m in METHODS if m in item):
            where = "%s %s" % (method.upper(), path)
            oid = op.get("operationId")
            if not isinstance(oid, str):
                problem("document: %s: no operationId" % where)
            elif oid in ids:
                problem("document: %s: operationId %s also names %s" % (where, oid, ids[oid]))
            else:
                ids[oid] = where
            for t in op.get("tags", []):
                if t not in tags:
                    problem("document: %s: tag %s is not declared in tags" % (where, t))
            for req in op.get("security", []):
                for name in req:
                    if name not in schemes:
                        problem("document: %s: security names an undefined scheme %s" % (where, name))
            params = all_parameters(doc, item, op)
            for p in params.values():
                if p.get("in") not in ("path", "query", "header", "cookie") or not isinstance(p.get("name"), str):
                    problem("document: %s: a parameter needs a name and in: path|query|header|cookie" % where)
                if "schema" not in p:
                    problem("document: %s: parameter %s has no schema" % (where, p.get("name")))
                else:
                    check_schema(p["schema"], where + " parameter " + str(p.get("name")))
                if p.get("in") == "path" and p.get("required") is not True:
                    problem("document: %s: path parameter %s must be required" % (where, p.get("name")))
            declared = sorted(n for (n, i) in params if i == "path")
            if declared != sorted(template_params(path)):
                problem("document: %s: path parameters %s do not match the template's %s" %
                        (where, declared, sorted(template_params(path))))
            if "requestBody" in op:
                rb = resolve(doc, op["requestBody"])
                if not isinstance(rb.get("content"), dict) or not rb["content"]:
                    problem("document: %s: requestBody without content" % where)
                for mt, media in rb.get("content", {}).items():
                    if "schema" not in media:
                        problem("document: %s: requestBody %s has no schema" % (where, mt))
                    else:
                        check_schema(media["schema"], where + " requestBody " + mt)
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                problem("document: %s: no responses" % where)
                continue
            for status, resp in responses.items():
                if not re.fullmatch(r"[1-5][0-9][0-9]", str(status)):
                    problem("document: %s: response key %r is not a status code" % (where, status))
                resp = resolve(doc, resp)
                if not isinstance(resp.get("description"), str):
                    problem("document: %s %s: a response needs a description" % (where, status))
                for mt, media in resp.get("content", {}).items():
                    if "schema" not in media:
                        problem("document: %s %s: %s has no schema" % (where, status, mt))
                    else:
                        check_schema(media["schema"], "%s %s %s" % (where, status, mt))
                for hname, h in resp.get("headers", {}).items():
                    h = resolve(doc, h)
                    if "schema" not in h:
                        problem("document: %s %s: header %s has no schema" % (where, status, hname))
                    else:
                        check_schema(h["schema"], "%s %s header %s" % (where, status, hname))
            roles = op.get("x-roles")
            secured = op.get("security", doc.get("security", [])) != []
            if secured and (not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles)):
                problem("document: %s: a secured operation needs x-roles, a list of %s" % (where, "|".join(ROLES)))
            if not secured and roles is not None:
                problem("document: %s: an open operation has no x-roles" % where)
            if secured and "401" not in responses:
                problem("document: %s: a secured operation answers 401" % where)
            if secured and roles is not None and set(roles) != set(ROLES) and "403" not in responses:
                problem("document: %s: roles are restricted but 403 is not documented" % where)


def all_parameters(doc, item, op):
    out = {}
    for p in item.get("parameters", []) + op.get("parameters", []):
        p = resolve(doc, p)
        out[(p.get("name"), p.get("in"))] = p
    return out


# ---- routing, as daemon/router.cpp does it ----
def split(path):
    return path[1:].split("/")


def match_paths(doc, segs):
    found = []
    for path in doc["paths"]:
        t = split(path)
        if len(t) != len(segs):
            continue
        params = {}
        ok = True
        for a, b in zip(t, segs):
            if a.startswith("{") and a.endswith("}"):
                if b == "":
                    ok = False
                    break
                params[a[1:-1]] = b
            elif a != b:
                ok = False
                break
        if ok:
            found.append((path, params))
    return found


def more_specific(a, b):
    for x, y in zip(split(a), split(b)):
        px, py = x.startswith("{"), y.startswith("{")
        if px != py:
            return not px
    return False


def decode(s, plus=False):
    try:
        raw = urllib.parse.unquote_to_bytes(s.replace("+", " ") if plus else s)
        if re.search(r"%(?![0-9A-Fa-f]{2})", s):
            return None
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def base_type(ct):
    return (ct or "").split(";")[0].strip().lower()


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def param_value(p, raw):
    """A query/path/header string as the parameter's schema sees it (numbers for integer schemas)."""
    schema = p.get("schema", {})
    t = schema.get("type")
    if t == "integer" and re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    if t == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def validation_errors(doc, schema, instance):
    v = schema_validator(doc, schema)
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
            for e in v.iter_errors(instance)][:3]


class Checker:
    def __init__(self, doc, exchanges):
        self.doc = doc
        self.exchanges = exchanges
        self.seen_ops = {}
        self.seen_status = {}
        self.used_schemas = set()
        self.validated = []   # (schema, body, the component schemas it reaches): for --mutations

    def run(self):
        for i, x in enumerate(self.exchanges):
            self.check_exchange(i, x)
        self.check_coverage()

    def response_body_ok(self, where, schema, x, media_type):
        if media_type == "application/json":
            try:
                body = json.loads(x["body"])
            except ValueError:
                problem("%s: the body is not JSON: %r" % (where, x["body"][:200]))
                return
        else:
            body = x["body"]
        for err in validation_errors(self.doc, schema, body):
            problem("%s: the response body does not match the document: %s" % (where, err))
        uses = set()
        note_refs(self.doc, schema, uses)
        self.used_schemas |= uses
        self.validated.append((schema, body, uses))

    def check_exchange(self, i, x):
        method, target, status = x["method"], x["target"], x["status"]
        where = "#%d %s %s -> %d" % (i, method, target, status)
        raw_path, _, raw_query = target.partition("?")
        segs = [decode(s) for s in split(raw_path)] if raw_path.startswith("/") else None
        if segs is None or any(s is None for s in segs):
            if status != 400:
                problem("%s: a path with bad percent-encoding must be 400 malformed" % where)
            self.error_body(where, x, "ErrorMalformed")
            return
        found = match_paths(self.doc, segs)
        if not found:
            if status != 404:
                problem("%s: the document has no such path: answered %d, not 404" % (where, status))
            self.error_body(where, x, "ErrorNotFound")
            return
        candidates = [(p, prm) for p, prm in found if method.lower() in self.doc["paths"][p]]
        if not candidates:
            allow = sorted({m.upper() for p, _ in found for m in METHODS if m in self.doc["paths"][p]})
            if status != 405:
                problem("%s: %s is not documented on %s: answered %d, not 405" % (where, method, found[0][0], status))
            got = sorted(a.strip() for a in (header(x["response_headers"], "Allow") or "").split(",") if a.strip())
            if got != allow:
                problem("%s: Allow is %s; the document lists %s" % (where, got, allow))
            self.error_body(where, x, "ErrorMethodNotAllowed")
            return
        path, path_params = candidates[0]
        for p, prm in candidates[1:]:
            if more_specific(p, path):
                path, path_params = p, prm
        item = self.doc["paths"][path]
        op = item[method.lower()]
        key = (method.upper(), path)
        self.seen_ops[key] = True
        where = "#%d %s %s (%s) -> %d" % (i, method, target, path, status)
        responses = op["responses"]
        if str(status) not in responses:
            problem("%s: status %d is not documented (documented: %s)" % (where, status, ", ".join(responses)))
            return
        self.seen_status[(key, str(status))] = True
        resp = resolve(self.doc, responses[str(status)])

        # the response
        content = resp.get("content", {})
        ct = base_type(x["content_type"])
        if not content:
            if x["body"]:
                problem("%s: a body although the document gives none" % where)
        elif ct not in content:
            problem("%s: Content-Type %s is not documented (%s)" % (where, x["content_type"], ", ".join(content)))
        else:
            self.response_body_ok(where, content[ct]["schema"], x, ct)
        for hname, h in resp.get("headers", {}).items():
            h = resolve(self.doc, h)
            value = header(x["response_headers"], hname)
            if value is None:
                if h.get("required"):
                    problem("%s: required response header %s is missing" % (where, hname))
                continue
            for err in validation_errors(self.doc, h["schema"], value):
                problem("%s: response header %s: %s" % (where, hname, err))

        # the role
        secured = op.get("security", self.doc.get("security", [])) != []
        role = x.get("role")
        if secured:
            roles = op.get("x-roles", [])
            if status == 401 and role in ROLES:
                problem("%s: 401 with a valid %s token" % (where, role))
            if status == 403 and role in roles:
                problem("%s: 403 for role %s, which x-roles allows" % (where, role))
            if status not in BEFORE_AUTH and role in ROLES and role not in roles:
                problem("%s: role %s passed the role check but x-roles does not list it" % (where, role))
            if status not in BEFORE_AUTH and role not in ROLES:
                problem("%s: answered %d without a valid token on a secured operation" % (where, status))

        # the request
        params = all_parameters(self.doc, item, op)
        query = []
        query_ok = True
        for pair in raw_query.split("&") if raw_query else []:
            if not pair:
                continue
            k, _, v = pair.partition("=")
            dk, dv = decode(k, True), decode(v, True)
            if dk is None or dv is None:
                query_ok = False
                continue
            query.append((dk, dv))
        if query_ok:
            for k, v in query:
                p = params.get((k, "query"))
                if p is None:
                    problem("%s: query parameter %s is not documented" % (where, k))
                elif 200 <= status < 300:
                    for err in validation_errors(self.doc, p["schema"], param_value(p, v)):
                        problem("%s: query parameter %s=%s: %s" % (where, k, v, err))
        elif status != 400:
            problem("%s: a query with bad percent-encoding must be 400" % where)
        if 200 <= status < 300:
            sent = {k for k, _ in query}
            for (name, where_in), p in params.items():
                if where_in == "query" and p.get("required") and name not in sent:
                    problem("%s: required query parameter %s was not sent" % (where, name))
                if where_in == "path":
                    for err in validation_errors(self.doc, p["schema"], param_value(p, path_params[name])):
                        problem("%s: path parameter %s=%s: %s" % (where, name, path_params[name], err))
                if where_in == "header":
                    value = header(x.get("request_headers", {}), name)
                    if value is not None:
                        for err in validation_errors(self.doc, p["schema"], param_value(p, value)):
                            problem("%s: header %s: %s" % (where, name, err))
        body = x.get("request_body", "")
        rb = resolve(self.doc, op["requestBody"]) if "requestBody" in op else None
        if x.get("expect") == "request_invalid":
            if rb is None:
                problem("%s: expected the requestBody schema to refuse the body, but there is none" % where)
            else:
                media = rb["content"].get(base_type(header(x.get("request_headers", {}), "Content-Type")))
                if media is None:
                    problem("%s: the request's Content-Type is not documented" % where)
                else:
                    value = self.request_value(body, base_type(header(x.get("request_headers", {}), "Content-Type")))
                    if value is not None and not validation_errors(self.doc, media["schema"], value):
                        problem("%s: the daemon refused this body, but the documented requestBody schema accepts "
                                "it: %s" % (where, body[:200]))
        elif 200 <= status < 300:
            if rb is None:
                if body.strip():
                    problem("%s: a body was sent but the operation documents none" % where)
            elif not body.strip():
                if rb.get("required"):
                    problem("%s: the documented requestBody is required but none was sent" % where)
            else:
                ctype = base_type(header(x.get("request_headers", {}), "Content-Type"))
                media = rb["content"].get(ctype)
                if media is None:
                    problem("%s: request Content-Type %s is not documented (%s)" % (where, ctype, ", ".join(rb["content"])))
                else:
                    value = self.request_value(body, ctype)
                    if value is None:
                        problem("%s: the request body is not JSON" % where)
                    else:
                        for err in validation_errors(self.doc, media["schema"], value):
                            problem("%s: the request body does not match the documented requestBody: %s" % (where, err))

    @staticmethod
    def request_value(body, ctype):
        if ctype == "application/json":
            try:
                return json.loads(body)
            except ValueError:
                return None
        return body

    def error_body(self, where, x, schema_name):
        schema = {"$ref": "#/components/schemas/" + schema_name}
        self.response_body_ok(where, schema, x, "application/json")
        if base_type(x["content_type"]) != "application/json":
            problem("%s: an error answered with Content-Type %s" % (where, x["content_type"]))

    def check_coverage(self):
        for path, method, op in operations(self.doc):
            key = (method.upper(), path)
            if key not in self.seen_ops:
                problem("coverage: %s %s (%s) was never called" % (method.upper(), path, op.get("operationId")))
                continue
            for status, resp in op["responses"].items():
                untested = resolve(self.doc, resp).get("x-untested")
                seen = (key, str(status)) in self.seen_status
                if not seen and not untested:
                    problem("coverage: %s %s never answered %s (exercise it, or mark the response x-untested: why)"
                            % (method.upper(), path, status))
                if seen and untested:
                    problem("coverage: %s %s answered %s, marked x-untested (%s): drop the mark"
                            % (method.upper(), path, status, untested))

    def untested_count(self):
        n = 0
        for path, method, op in operations(self.doc):
            for status, resp in op["responses"].items():
                if (((method.upper(), path), str(status)) not in self.seen_status):
                    n += 1
        return n


def note_refs(doc, node, out):
    """Adds to `out` every component schema `node` reaches through $ref."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in out:
                out.add(name)
                note_refs(doc, doc["components"]["schemas"][name], out)
        for v in node.values():
            note_refs(doc, v, out)
    elif isinstance(node, list):
        for v in node:
            note_refs(doc, v, out)


def check_served(doc, exchanges):
    served = [x for x in exchanges if x["method"] == "GET" and x["target"].split("?")[0] == "/v1/openapi.json"
              and x["status"] == 200]
    if not served:
        problem("served: GET /v1/openapi.json was never answered 200")
    expected = json.loads(json.dumps(doc))
    for x in served:
        try:
            got = json.loads(x["body"])
        except ValueError:
            problem("served: /v1/openapi.json is not JSON")
            continue
        if got != expected:
            problem("served: /v1/openapi.json differs from docs/openapi.yaml (rebuild the daemon?)")
    # info.version is the daemon's version (mqledger_build_info{version=...} in /metrics).
    for x in exchanges:
        if x["method"] == "GET" and x["target"].split("?")[0] == "/metrics" and x["status"] == 200:
            m = re.search(r'mqledger_build_info\{[^}]*version="([^"]*)"', x["body"])
            if not m:
                problem("served: /metrics has no mqledger_build_info{version=...}")
            elif m.group(1) != doc["info"]["version"]:
                problem("served: info.version is %s but the daemon is version %s" % (doc["info"]["version"], m.group(1)))
            break


def closed_schemas(doc):
    """The component schemas that refuse unknown properties: additionalProperties false, or the
    target of a $ref from a schema with unevaluatedProperties false."""
    schemas = doc["components"]["schemas"]
    out = {n for n, sc in schemas.items() if sc.get("additionalProperties") is False}
    for sc in schemas.values():
        ref = sc.get("$ref", "")
        if sc.get("unevaluatedProperties") is False and ref.startswith("#/components/schemas/"):
            out.add(ref.rsplit("/", 1)[1])
    return out


def mutations(doc, checker):
    """Deletes each property of each closed component schema the responses use, in turn: some
    recorded response that reaches the schema must then fail validation (else the document
    describes a field no response showed, and the test could not notice it changing)."""
    survivors = []
    tried = 0
    for name in sorted(checker.used_schemas & closed_schemas(doc)):
        props = doc["components"]["schemas"][name].get("properties")
        if not isinstance(props, dict):
            continue
        cases = [(sc, body) for sc, body, uses in checker.validated if name in uses]
        # A property the schema's own allOf conditionals name (EventFields: `type` selects the
        # schema of `data`) stays evaluated by them: its deletion from `properties` cannot show.
        pinned = set()
        for cond in doc["components"]["schemas"][name].get("allOf", []):
            for part in ("if", "then", "else"):
                pinned |= set(cond.get(part, {}).get("properties", {}))
        for victim in [v for v in props if v not in pinned]:
            tried += 1
            mutated = copy.deepcopy(doc)
            target = mutated["components"]["schemas"][name]
            del target["properties"][victim]
            if isinstance(target.get("required"), list) and victim in target["required"]:
                target["required"].remove(victim)
            _validators.clear()
            if not any(validation_errors(mutated, sc, body) for sc, body in cases):
                survivors.append("%s.%s" % (name, victim))
    _validators.clear()
    for s in survivors:
        problem("mutations: deleting %s from the document fails no recorded response: no response showed it, so "
                "the test would not notice it change (exercise it)" % s)
    return tried


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.stderr.write("usage: openapi_check.py openapi.yaml exchanges.json [--mutations]\n")
        return 2
    with open(args[0], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    with open(args[1], encoding="utf-8") as f:
        exchanges = json.load(f)
    check_document(doc)
    if problems:
        print("\n".join(problems))
        print("FAILED: the document itself (%d problems)" % len(problems))
        return 1
    c = Checker(doc, exchanges)
    c.run()
    check_served(doc, exchanges)
    tried = 0
    if "--mutations" in sys.argv and not problems:
        tried = mutations(doc, c)
    ops = sum(1 for _ in operations(doc))
    statuses = sum(len(op["responses"]) for _, _, op in operations(doc))
    if problems:
        print("\n".join(problems))
        print("FAILED: %d problems in %d exchanges" % (len(problems), len(exchanges)))
        return 1
    print("ok: %d exchanges; %d operations all called; %d of %d documented responses seen (the rest x-untested); "
          "%d schema mutations all caught" % (len(exchanges), ops, statuses - c.untested_count(), statuses, tried))
    return 0


if __name__ == "__main__":
    sys.exit(main())
