"""Seeds a demo server with objects in every state a route acts on, so that
fuzzing reaches past "not found": draft audits with answers, submitted audits
with photos, a claimed one, an approved one, an unfinished tus upload and a
prepared rating publication. Prints what it made as JSON: the real values of
each route's path parameters (keyed by the route as the OpenAPI document
writes it), the item keys of the checklists, and a token per demo role.

Usage: python3 seed.py BASE_URL CHECKLISTS_DIR > ids.json
Needs only the standard library.
"""

import base64
import datetime
import json
import random
import struct
import sys
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

PASSWORD = "demo-password"
ROLES = ("admin", "operator", "volunteer", "coordinator", "reviewer", "council")


def call(base, method, path, token=None, body=None, headers=None, raw=None):
    """One request; returns (status, headers, parsed JSON or None)."""
    headers = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, got, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, got, text = error.code, error.headers, error.read()
    if status >= 500:
        sys.exit(f"seeding: {method} {path} answered {status}: {text[:500]!r}")
    try:
        return status, got, json.loads(text) if text else None
    except ValueError:
        return status, got, None


def expect(status, wanted, what, body):
    if status not in wanted:
        sys.exit(f"seeding: {what} answered {status}: {json.dumps(body)[:500]}")


def png(width, height, shade):
    """A small valid PNG (8-bit grey), different for each shade."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes((shade + x + y) % 256 for x in range(width)) for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def multipart(fields, file_bytes):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def login(base, role):
    status, _, body = call(
        base, "POST", "/api/v1/auth/login", body={"email": f"{role}@demo.local", "password": PASSWORD}
    )
    expect(status, {200}, f"login as {role}", body)
    return body["access_token"]


def items(base, token):
    """Every checklist item key, and each checklist's (id, version)."""
    status, _, listing = call(base, "GET", "/api/v1/checklists", token)
    expect(status, {200}, "the checklist list", listing)
    keys, versions = [], []
    for checklist in listing["items"]:
        versions.append({"id": checklist["id"], "version": str(checklist["version"])})
        path = f"/api/v1/checklists/{checklist['id']}/versions/{checklist['version']}"
        status, _, compiled = call(base, "GET", path, token)
        expect(status, {200}, path, compiled)
        keys.extend(collect_keys(compiled))
    return sorted(set(keys)), versions


def collect_keys(value):
    """Item keys (`checklist.item`) wherever the compiled form holds them."""
    if isinstance(value, dict):
        key = value.get("key")
        if isinstance(key, str) and "." in key:
            yield key
        for inner in value.values():
            yield from collect_keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from collect_keys(inner)


def new_audit(base, token, site, answers=None):
    audit = str(uuid.uuid4())
    status, _, body = call(base, "PUT", f"/api/v1/audits/{audit}", token, {"site_id": site})
    expect(status, {201}, "a new audit", body)
    if answers:
        status, headers, body = call(base, "GET", f"/api/v1/audits/{audit}", token)
        status, _, body = call(
            base,
            "PATCH",
            f"/api/v1/audits/{audit}/answers",
            token,
            {"answers": answers},
            {"If-Match": headers["ETag"]},
        )
        expect(status, {200}, "answers", body)
    return audit


def submitted(base, token, site, answers, shade):
    """A complete audit with every required photo, submitted; its photo ids."""
    audit = new_audit(base, token, site, answers)
    status, _, problem = call(base, "POST", f"/api/v1/audits/{audit}/submit", token, {})
    expect(status, {422}, "a submission without photos", problem)
    photos = []
    for n, error in enumerate(problem["errors"]):
        if error["code"] != "photo-required":
            sys.exit(f"seeding: the example lacks an answer: {error}")
        data, content_type = multipart({"item": error["field"]}, png(40 + n, 30, shade + n))
        status, _, photo = call(
            base,
            "POST",
            f"/api/v1/audits/{audit}/photos",
            token,
            raw=data,
            headers={"Content-Type": content_type},
        )
        expect(status, {201}, "a photo", photo)
        photos.append(photo["id"])
    status, _, body = call(base, "POST", f"/api/v1/audits/{audit}/submit", token, {})
    expect(status, {200}, "the submission", body)
    return audit, photos


def main():
    base, checklists = sys.argv[1].rstrip("/"), Path(sys.argv[2])
    tokens = {role: login(base, role) for role in ROLES}
    admin, volunteer, reviewer = tokens["admin"], tokens["volunteer"], tokens["reviewer"]
    example = json.loads((checklists / "examples" / "accessible-new-building.json").read_text())
    answers = example["answers"]
    keys, versions = items(base, admin)

    status, _, institutions = call(base, "GET", "/api/v1/institutions?limit=100", admin)
    expect(status, {200}, "the institutions", institutions)
    institution_ids = [i["id"] for i in institutions["items"]]
    sites = []
    for institution in institution_ids[:4]:
        status, _, listing = call(base, "GET", f"/api/v1/institutions/{institution}/sites", admin)
        expect(status, {200}, "the sites", listing)
        sites.extend(s["id"] for s in listing["items"])
    status, _, organisations = call(base, "GET", "/api/v1/organisations", admin)
    expect(status, {200}, "the organisations", organisations)
    status, _, users = call(base, "GET", "/api/v1/users", admin)
    expect(status, {200}, "the users", users)

    partial = dict(random.Random(1).sample(sorted(answers.items()), 8))
    drafts = [new_audit(base, volunteer, sites[0]), new_audit(base, volunteer, sites[1], partial)]
    done = [submitted(base, volunteer, sites[n % len(sites)], answers, 10 * n) for n in range(4)]
    audits = drafts + [audit for audit, _ in done]
    photos = [photo for _, ids in done for photo in ids]

    # One submitted audit claimed, one approved (with a verdict on every rule
    # that needs one), the others left in the queue for the fuzzer.
    claimed, approved = done[0][0], done[1][0]
    status, _, body = call(base, "POST", f"/api/v1/audits/{claimed}/claim", reviewer, {})
    expect(status, {200, 201}, "a claim", body)
    status, _, audit = call(base, "GET", f"/api/v1/audits/{approved}", reviewer)
    expect(status, {200}, "a submitted audit", audit)
    rules = sorted({r["rule"] for r in audit["evaluation"]["rules"]})
    for rule in audit["evaluation"]["rules"]:
        if rule["outcome"] == "needs_review":
            status, _, body = call(
                base,
                "PUT",
                f"/api/v1/audits/{approved}/verdicts/{rule['rule']}",
                reviewer,
                {"verdict": "pass", "comment": "checked on the photos"},
            )
            expect(status, {200, 201}, "a verdict", body)
    status, _, body = call(
        base, "POST", f"/api/v1/audits/{approved}/review", reviewer, {"decision": "approve"}
    )
    expect(status, {200}, "an approval", body)

    metadata = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("audit_id", drafts[1]), ("item", keys[0]), ("filename", "p.png"))
    )
    status, headers, body = call(
        base,
        "POST",
        "/api/v1/uploads",
        volunteer,
        raw=b"",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": "5000", "Upload-Metadata": metadata},
    )
    expect(status, {201}, "a tus upload", body)
    uploads = [headers["Location"].rsplit("/", 1)[-1]]

    # The audits were submitted just now: this year's rating holds them.
    year = datetime.datetime.now(datetime.timezone.utc).year
    status, _, publication = call(
        base,
        "POST",
        "/api/v1/ratings/publications",
        tokens["operator"],
        {"region": "48", "sector": "social_services", "year": year},
    )
    publications = [publication["id"]] if status == 201 else []

    path = "/api/v1"
    ids = {
        f"{path}/audits/{{id}}": audits,
        f"{path}/institutions/{{id}}": institution_ids,
        f"{path}/institutions/{{id}}/sites": institution_ids,
        f"{path}/sites/{{id}}": sites,
        f"{path}/sites/{{id}}/passport": sites,
        f"{path}/sites/{{id}}/a11yjson": sites,
        f"{path}/organisations/{{id}}": [o["id"] for o in organisations["items"]],
        f"{path}/users/{{id}}": [u["id"] for u in users["items"]],
        f"{path}/photos/{{id}}": photos,
        f"{path}/uploads/{{id}}": uploads,
        f"{path}/ratings/publications/{{id}}": publications,
        f"{path}/public/ratings/{{id}}": publications,
    }
    for route in ("answers", "claim", "diff", "photos", "review", "revisions", "submit"):
        ids[f"{path}/audits/{{id}}/{route}"] = audits
    for route in ("verdicts/{rule}", "revisions/{revision}"):
        ids[f"{path}/audits/{{id}}/{route}"] = audits
    ids[f"{path}/photos/{{id}}/thumbnail/{{size}}"] = photos
    ids[f"{path}/ratings/publications/{{id}}/approve"] = publications
    status, _, methodologies = call(base, "GET", "/api/v1/methodologies", admin)
    expect(status, {200}, "the methodologies", methodologies)
    ids[f"{path}/methodologies/{{id}}/bundle"] = [m["id"] for m in methodologies["items"]]
    json.dump(
        {
            "ids": ids,
            "revisions": ["1", "2"],
            "rules": rules,
            "thumbnail_sizes": ["320", "1280"],
            "checklists": versions,
            "items": keys,
            "tokens": tokens,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
