#!/usr/bin/env python3
"""Checks mqledger's Merkle proofs against its signed checkpoints, offline: a stand-alone
re-implementation of `mqledger proof check-inclusion | check-consistency` (daemon/proof_tools.cpp)
in Python 3's standard library, plus the `openssl` command for Ed25519 signatures.

  check_proof.py inclusion EVENT.json PROOF.json CHECKPOINT PUBKEY.pem [--key-name NAME]
  check_proof.py consistency OLD NEW PROOF.json PUBKEY.pem [--key-name NAME]

EVENT.json: one event as GET /v1/events serves it. PROOF.json: GET /v1/proofs/inclusion's answer,
or an item of GET /v1/instances/ID/events?proofs=true (it carries "proof"), or for consistency
GET /v1/proofs/consistency's answer. CHECKPOINT, OLD, NEW: notes from GET /v1/ledger/checkpoint.
The log's key name defaults to the checkpoint's origin. Each step prints what it checked.
Exit 0: every step holds; 1: a step failed (it says which); 2: an input is unusable.
"""
import argparse, base64, collections, datetime, hashlib, json, os, re, subprocess, sys, tempfile

class Unusable(Exception):
    """An input that is not what it should be (exit 2), as opposed to a check that fails (1)."""

def sha256(b):
    return hashlib.sha256(b).digest()

def node(left, right):                      # RFC 9162 2.1.1: an interior node's hash
    return sha256(b"\x01" + left + right)

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Unusable(f"cannot read {path}: {e.strerror}")

def read_json(path):
    try:
        v = json.loads(read(path))          # duplicate keys: the last wins, as in jsonb
    except ValueError:
        raise Unusable(f"{path} is not JSON")
    if not isinstance(v, dict):
        raise Unusable(f"{path} is not a JSON object")
    return v

def field(obj, key, kind, path):
    v = obj.get(key)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise Unusable(f'{path}: "{key}" is missing or not a{"n integer" if kind is int else " string"}')
    return v

def b64(text):
    """Strict standard base64 (RFC 4648 alphabet, padding, the one encoding of its bytes) or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if base64.b64encode(raw).decode() == text else None

def from_hex(h, what):
    if not isinstance(h, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", h):
        raise Unusable(f"{what} must be 64 hex digits")
    return bytes.fromhex(h)

# --- Step 1: the event is what its hash says (README.md "For auditors", the hash chain) ---------

ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

def canonical_json(v):
    """PostgreSQL's jsonb text form, `data::text` (README.md "Canonical JSON")."""
    if v is None or v is True or v is False:
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):                  # escape_json in PostgreSQL's json.c; the rest literal
        return '"' + "".join(ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(canonical_json(e) for e in v) + "]"
    if isinstance(v, dict):                 # jsonb's key order: shorter first, then bytewise
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(canonical_json(k) + ": " + canonical_json(v[k]) for k in keys) + "}"
    return json.dumps(v)                    # a float: no stored event holds one, it cannot match

TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|([+-])(\d\d):(\d\d))", re.A)

def microseconds(text, what):
    """An RFC 3339 time as integer microseconds since 1970-01-01T00:00:00Z (digits after 6 dropped)."""
    m = TIME.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise Unusable(f"{what} is not an RFC 3339 time with a zone")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    oh, om = int(m.group(10) or 0), int(m.group(11) or 0)
    if h > 23 or mi > 59 or s > 59 or oh > 23 or om > 59:
        raise Unusable(f"{what} is out of range")
    try:                                    # Gregorian years repeat every 400 (146097 days): 0 is 400
        days = datetime.date(y or 400, mo, d).toordinal() - (0 if y else 146097) - 719163
    except ValueError:
        raise Unusable(f"{what} is not a calendar date")
    offset = (oh * 3600 + om * 60) * (-1 if m.group(9) == "-" else 1)
    return (days * 86400 + h * 3600 + mi * 60 + s - offset) * 1000000 + int(((m.group(7) or "") + "00000")[:6])

def event_hash(e, path):
    """SHA-256 (hex) of the pre-image: the nine fields joined by "\\n", no final "\\n", UTF-8."""
    for key in ("data", "metadata"):
        if key not in e:
            raise Unusable(f'{path} has no "{key}"')
    fields = [field(e, "prev_hash", str, path), str(field(e, "position", int, path)), field(e, "stream", str, path),
              str(field(e, "stream_version", int, path)), field(e, "type", str, path),
              str(microseconds(e.get("effective_at"), path + ": effective_at")),
              str(microseconds(e.get("recorded_at"), path + ": recorded_at"))]
    try:
        fields += [canonical_json(e["data"]), canonical_json(e["metadata"])]
        return hashlib.sha256("\n".join(fields).encode("utf-8")).hexdigest()
    except UnicodeEncodeError:              # a lone surrogate ("\ud800"): no stored text holds one
        raise Unusable(f"{path} holds a string that is not valid Unicode")

# --- Step 2: the checkpoint is signed by the log (C2SP signed-note, tlog-checkpoint) -----------

Note = collections.namedtuple("Note", "body origin size root signatures")

def read_note(path):
    """ORIGIN, SIZE, base64 ROOT (and extension lines), an empty line, "— NAME BASE64" lines."""
    try:
        text = read(path).decode("utf-8")
    except UnicodeDecodeError:
        raise Unusable(f"{path} is not UTF-8")
    body, sep, sigs = text.partition("\n\n")
    lines = body.split("\n")
    if not sep or not sigs.endswith("\n") or len(lines) < 3 or "" in lines or \
            not re.fullmatch(r"0|[1-9][0-9]{0,17}", lines[1]) or len(b64(lines[2]) or b"") != 32:
        raise Unusable(f"{path} is not a signed checkpoint note")
    signatures = []
    for line in sigs[:-1].split("\n"):      # each: BASE64(KEY_ID (4 bytes) || SIGNATURE)
        m = re.fullmatch(r"\u2014 ([^ +]+) (\S+)", line)
        payload = b64(m.group(2)) if m else None
        if not payload or len(payload) < 5:
            raise Unusable(f"{path}: not a signature line: {line!r}")
        signatures.append((m.group(1), payload))
    return Note((body + "\n").encode(), lines[0], int(lines[1]), b64(lines[2]), signatures)

def raw_public_key(path):
    """The 32-byte Ed25519 key: the last 32 bytes of the DER SubjectPublicKeyInfo in the PEM."""
    m = re.search(rb"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", read(path), re.S)
    der = (b64(b"".join(m.group(1).split()).decode()) or b"") if m else b""
    # SEQUENCE { SEQUENCE { OID 1.3.101.112 (Ed25519) }, BIT STRING { 32 bytes } }
    if len(der) != 44 or not der.startswith(bytes.fromhex("302a300506032b6570032100")):
        raise Unusable(f"{path} is not an Ed25519 public key in PEM")
    return der[12:]

def ed25519_verifies(pem_path, message, signature):
    # Python's standard library has no Ed25519 (no public-key cryptography at all), and a
    # hand-written curve implementation is nothing an auditor should have to trust: OpenSSL checks.
    with tempfile.TemporaryDirectory() as d:
        body, sig = os.path.join(d, "body"), os.path.join(d, "sig")
        for name, data in ((body, message), (sig, signature)):
            with open(name, "wb") as f:
                f.write(data)
        try:
            r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pem_path, "-rawin",
                                "-in", body, "-sigfile", sig], capture_output=True, text=True)
        except FileNotFoundError:
            raise Unusable("the openssl command is missing")
    if r.returncode != 0 and "Verification Failure" not in r.stdout + r.stderr:
        raise Unusable("openssl pkeyutl failed: " + (r.stderr or r.stdout).strip())
    return r.returncode == 0

def signed_by_log(path, args, label):
    """The note of `path` if it carries a valid signature of the log's key, else None."""
    note = read_note(path)
    name = args.key_name or note.origin
    key_id = sha256(name.encode() + b"\n\x01" + raw_public_key(args.pubkey))[:4]
    print(f"{label}: {note.origin}, tree size {note.size}, root {note.root.hex()}; key '{name}' ID {key_id.hex()}")
    for line_name, payload in note.signatures:   # other lines (witnesses' co-signatures) don't count
        if line_name == name and payload[:4] == key_id and len(payload) == 68 and \
                ed25519_verifies(args.pubkey, note.body, payload[4:]):
            print(f"{label}: signature ok")
            return note
    print(f"{label}: FAILED: no valid signature by the key '{name}' (forged or altered)")
    return None

# --- Step 3: the proofs (RFC 9162 2.1.3.2 and 2.1.4.2, the iterative algorithms) ---------------

def verify_inclusion(index, size, leaf, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(path, 1):
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            print(f"  step {i}: left sibling  {p.hex()} -> {r.hex()}")
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
            print(f"  step {i}: right sibling {p.hex()} -> {r.hex()}")
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root

def verify_consistency(m, n, old_root, new_root, proof):
    if m == n:                              # the same tree: no proof, the same root
        return not proof and old_root == new_root
    if m == 0 or m > n or not proof:
        return False
    if m & (m - 1) == 0:                    # m is a power of two: the old root is the first node
        proof = [old_root] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for i, c in enumerate(proof[1:], 1):
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        print(f"  step {i}: {c.hex()} -> old root {fr.hex()}, new root {sr.hex()}")
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root

def hashes(proof, path):
    if not isinstance(proof.get("hashes"), list):
        raise Unusable(f'{path}: "hashes" must be a list')
    return [from_hex(h, f'{path}: every entry of "hashes"') for h in proof["hashes"]]

def check_inclusion(args):
    event, proof = read_json(args.event), read_json(args.proof)
    proof = proof["proof"] if isinstance(proof.get("proof"), dict) else proof
    claimed, position = field(event, "hash", str, args.event), field(event, "position", int, args.event)
    leaf = sha256(b"\x00" + from_hex(claimed, f'{args.event}: "hash"'))   # RFC 9162 leaf hash
    if event_hash(event, args.event) != claimed:
        print(f"event: FAILED: its fields do not hash to its hash {claimed} (altered)")
        return 1
    print(f"event: position {position}, its fields hash to {claimed}; leaf hash {leaf.hex()}")
    note = signed_by_log(args.checkpoint, args, "checkpoint")
    if not note:
        return 1
    size = field(proof, "tree_size", int, args.proof)
    index = field(proof, "leaf_index", int, args.proof) if "leaf_index" in proof \
        else field(proof, "position", int, args.proof) - 1
    if index != position - 1 or size != note.size:
        print(f"inclusion: FAILED: the proof is for leaf {index} of {size}, the event is leaf {position - 1} "
              f"and the checkpoint's tree size is {note.size}")
        return 1
    if not verify_inclusion(index, size, leaf, hashes(proof, args.proof), note.root):
        print(f"inclusion: FAILED: the proof does not lead from leaf {leaf.hex()} to the root")
        return 1
    print(f"inclusion: ok (leaf {index} of {size}: the event is in the signed tree)")
    return 0

def check_consistency(args):
    old = signed_by_log(args.old, args, "old checkpoint")
    new = old and signed_by_log(args.new, args, "new checkpoint")
    if not new:
        return 1
    proof = read_json(args.proof)
    frm, to = field(proof, "from", int, args.proof), field(proof, "to", int, args.proof)
    if old.origin != new.origin or (frm, to) != (old.size, new.size) or frm > to:
        print(f"consistency: FAILED: the proof is from {frm} to {to}, the checkpoints are {old.origin} {old.size} "
              f"and {new.origin} {new.size} (other logs or sizes, or the new one is smaller: history was cut)")
        return 1
    # The empty tree is a prefix of every tree.
    if frm != 0 and not verify_consistency(frm, to, old.root, new.root, hashes(proof, args.proof)):
        print("consistency: FAILED: the new tree does not extend the old one (history was rewritten)")
        return 1
    print(f"consistency: ok (the tree of {to} extends the tree of {frm})")
    return 0

def main():
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, files in (("inclusion", "event proof checkpoint"), ("consistency", "old new proof")):
        p = sub.add_parser(command)
        for name in files.split() + ["pubkey"]:
            p.add_argument(name)
        p.add_argument("--key-name", help="the log's key name (default: the checkpoint's origin)")
    args = parser.parse_args()              # a usage error exits 2
    try:
        return check_inclusion(args) if args.command == "inclusion" else check_consistency(args)
    except Unusable as e:
        print(f"check_proof.py: {e}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
