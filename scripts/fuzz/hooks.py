"""schemathesis hooks that point generated requests at real objects.

Random ids only ever reach "not found". Before each call, each with even
odds: the path parameters are replaced by those of an object the seeding made
(an audit in each state, a photo, an upload, a site, a rule, a revision...);
the region, sector, year and revision filters get values that exist; tus
requests carry `Tus-Resumable: 1.0.0`; a new audit is created on a real site;
and an answer batch names real checklist items under the audit's current
version. So validation, state transitions and review run on what the fuzzer
generates. The `problem_json` check fails any refusal that is not
problem+json with a code.

Reads FUZZ_IDS (the seeding's JSON), FUZZ_BASE (the server), FUZZ_TOKEN (the
caller's bearer token) and FUZZ_SEED (for the choices made here).
"""

import datetime
import json
import os
import random
import urllib.error
import urllib.request

import schemathesis

SEEDED = json.loads(open(os.environ["FUZZ_IDS"], encoding="utf-8").read())
TOKEN = os.environ["FUZZ_TOKEN"]
BASE = os.environ["FUZZ_BASE"]
CHOICE = random.Random(int(os.environ.get("FUZZ_SEED", "0")))
REAL = 0.5
THIS_YEAR = datetime.datetime.now(datetime.timezone.utc).year


def real():
    return CHOICE.random() < REAL


def current_etag(base, audit):
    request = urllib.request.Request(
        f"{base}/api/v1/audits/{audit}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers.get("ETag")
    except urllib.error.HTTPError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    route = case.operation.path
    method = case.operation.method.upper()
    params = case.path_parameters
    if params and real():
        ids = SEEDED["ids"].get(route)
        if "id" in params and ids:
            params["id"] = CHOICE.choice(ids)
        if "rule" in params and SEEDED["rules"]:
            params["rule"] = CHOICE.choice(SEEDED["rules"])
        if "revision" in params:
            params["revision"] = CHOICE.choice(SEEDED["revisions"])
        if "size" in params:
            params["size"] = CHOICE.choice(SEEDED["thumbnail_sizes"])
        if "version" in params and SEEDED["checklists"]:
            params.update(CHOICE.choice(SEEDED["checklists"]))

    query = case.query
    if query and real():
        # The rating's and the directory's filters, as a real client sets them.
        for name, values in (
            ("region", ["48"]),
            ("sector", ["social_services", "education", "culture", "health"]),
            ("year", [THIS_YEAR - 1, THIS_YEAR]),
            ("from", [1]),
            ("to", [1, 2]),
        ):
            if name in query:
                query[name] = CHOICE.choice(values)
    if route.startswith("/api/v1/uploads") and real():
        case.headers = dict(case.headers or {}, **{"Tus-Resumable": "1.0.0"})

    body = case.body if isinstance(case.body, dict) else None
    if route == "/api/v1/audits/{id}" and method == "PUT" and body is not None and real():
        sites = SEEDED["ids"]["/api/v1/sites/{id}"]
        body["site_id"] = CHOICE.choice(sites)
    if route == "/api/v1/audits/{id}/answers" and method == "PATCH" and params:
        if real():
            etag = current_etag(BASE, params["id"])
            if etag:
                case.headers = dict(case.headers or {}, **{"If-Match": etag})
        answers = body.get("answers") if body is not None else None
        if isinstance(answers, dict) and answers and real():
            body["answers"] = {
                CHOICE.choice(SEEDED["items"]): value for value in answers.values()
            }



@schemathesis.check
def problem_json(ctx, response, case):
    """Every refusal is problem+json with a stable code (HEAD has no body)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not problem+json")
    try:
        code = json.loads(response.text).get("code")
    except ValueError:
        code = None
    if not code:
        raise AssertionError(f"{response.status_code} problem without a code")
