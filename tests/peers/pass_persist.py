#!/usr/bin/env python3
"""net-snmp `pass_persist` handler whose values a test can change while snmpd runs.

Usage (from snmpd.conf, written by `coldaisle_testkit::peers::Snmpd`):

    pass_persist <subtree> <wrapper that execs: python3 pass_persist.py VALUES_JSON SUBTREE>

VALUES_JSON maps numeric OIDs (with or without a leading dot) to typed values:

    {"1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1": {"type": "integer", "value": 235},
     "1.3.6.1.4.1.318.1.1.26.4.3.1.4.1":    {"type": "string",  "value": "PDU-A"}}

Types are the pass_persist ones: integer, unsigned, gauge, counter, counter64,
timeticks, ipaddress, objectid, string, octet (value = space-separated hex bytes).

The file is re-read on every request, so the test changes values by writing a new
file and renaming it over the old one (atomic: this script never sees half a file).
A missing or unreadable file is answered as "no values" and reported on stderr.

Protocol (stdin/stdout, one item per line, flushed after every answer):
  PING                    -> PONG
  get\\nOID                -> OID\\nTYPE\\nVALUE or NONE
  getnext\\nOID            -> the first OID in the file after OID (numeric arc order)
                             within SUBTREE, or NONE
  set\\nOID\\nTYPE VALUE     -> not-writable (the simulated device is read-only)
EOF (snmpd exited) ends the script.
"""

import json
import sys

VALID_TYPES = {
    "integer",
    "unsigned",
    "gauge",
    "counter",
    "counter64",
    "timeticks",
    "ipaddress",
    "objectid",
    "string",
    "octet",
}


def parse_oid(text):
    """'.1.3.6' or '1.3.6' -> (1, 3, 6); None when not a numeric OID."""
    text = text.strip().lstrip(".")
    if not text:
        return ()
    try:
        return tuple(int(arc) for arc in text.split("."))
    except ValueError:
        return None


def format_oid(arcs):
    return "." + ".".join(str(arc) for arc in arcs)


def log(message):
    sys.stderr.write("pass_persist.py: %s\n" % message)
    sys.stderr.flush()


def load_values(path, subtree):
    """Return a sorted list of (arcs, type, value) inside subtree."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        log("cannot read values file %s: %s" % (path, exc))
        return []
    if not isinstance(raw, dict):
        log("values file %s: top level must be an object" % path)
        return []
    entries = []
    for key, item in raw.items():
        arcs = parse_oid(key)
        if arcs is None or arcs[: len(subtree)] != subtree:
            log("ignoring %r: not a numeric OID under %s" % (key, format_oid(subtree)))
            continue
        if not isinstance(item, dict) or item.get("type") not in VALID_TYPES:
            log("ignoring %r: want {\"type\": one of %s, \"value\": ...}" % (key, sorted(VALID_TYPES)))
            continue
        value = str(item.get("value", "")).replace("\n", " ")
        entries.append((arcs, item["type"], value))
    entries.sort(key=lambda entry: entry[0])
    return entries


def answer(lines):
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def main():
    if len(sys.argv) != 3:
        log("usage: pass_persist.py VALUES_JSON SUBTREE")
        return 2
    values_path = sys.argv[1]
    subtree = parse_oid(sys.argv[2])
    if subtree is None:
        log("subtree %r is not a numeric OID" % sys.argv[2])
        return 2

    while True:
        line = sys.stdin.readline()
        if not line:
            return 0  # snmpd closed the pipe
        command = line.strip()
        if command == "":
            return 0  # snmpd sends an empty line on shutdown
        if command == "PING":
            answer(["PONG"])
            continue
        if command in ("get", "getnext"):
            requested = parse_oid(sys.stdin.readline())
            if requested is None:
                answer(["NONE"])
                continue
            entries = load_values(values_path, subtree)
            found = None
            if command == "get":
                found = next((e for e in entries if e[0] == requested), None)
            else:
                found = next((e for e in entries if e[0] > requested), None)
            if found is None:
                answer(["NONE"])
            else:
                answer([format_oid(found[0]), found[1], found[2]])
            continue
        if command == "set":
            sys.stdin.readline()  # OID
            sys.stdin.readline()  # TYPE VALUE
            answer(["not-writable"])
            continue
        log("unknown command %r" % command)
        answer(["NONE"])


if __name__ == "__main__":
    sys.exit(main())
