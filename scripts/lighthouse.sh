#!/usr/bin/env bash
# Audits the web console with Lighthouse (performance and accessibility): the flags page
# and a flag page, signed in, and prints each page's scores and every audit that is not
# passed, with the elements (or resources) it names.
#
#   scripts/lighthouse.sh [--desktop] [/ui/path ...]
#
# Starts a `vexil serve` on a free loopback port with a fresh SQLite file and an instance
# token; creates some flags (one with rules in production), adds an admin member and signs
# in through the console's forms (sign-in, forced password change, sign-in again) to get a
# session cookie; runs Lighthouse (pinned, installed with npm under ~/.cache) in headless
# Chromium on each page, with the cookie passed through --extra-headers; stops the server.
# The default pages are /ui/default/default/flags and
# /ui/default/default/flags/checkout-redesign/in/production; paths given replace them.
#
# --desktop: Lighthouse's desktop preset (default: its mobile emulation and throttling).
# VEXIL_BIN: the server binary (default: `cargo build --release -p vexil` and its binary).
# CHROME_PATH: the browser (default /usr/bin/chromium). Needs Node >= 18.20 and npm.
# VEXIL_LH_REPORT_DIR: where the JSON and HTML reports go (default target/lighthouse).
# VEXIL_LH_KEEP=1 keeps the temp dir (server log, SQLite database, headers).
# Exits non-zero when setup fails, not on low scores.
set -euo pipefail
cd "$(dirname "$0")/.."

LIGHTHOUSE_VERSION=12.2.3 # 13 needs Node 22.
preset=mobile
pages=()
for arg in "$@"; do
  case "$arg" in
    --desktop) preset=desktop ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    /ui/*) pages+=("$arg") ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#pages[@]} -eq 0 ]; then
  pages=(/ui/default/default/flags /ui/default/default/flags/checkout-redesign/in/production)
fi
export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"
[ -x "$CHROME_PATH" ] || { echo "no browser at $CHROME_PATH (set CHROME_PATH)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/vexil-lighthouse.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${VEXIL_LH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Lighthouse, pinned, in its own npm prefix.
lh_dir="${XDG_CACHE_HOME:-$HOME/.cache}/vexil-lighthouse/$LIGHTHOUSE_VERSION"
lighthouse="$lh_dir/node_modules/.bin/lighthouse"
if [ "$("$lighthouse" --version 2>/dev/null)" != "$LIGHTHOUSE_VERSION" ]; then
  echo "== installing lighthouse $LIGHTHOUSE_VERSION into $lh_dir"
  rm -rf "$lh_dir"
  mkdir -p "$lh_dir"
  npm install --prefix "$lh_dir" --no-audit --no-fund --silent "lighthouse@$LIGHTHOUSE_VERSION"
fi

# The server binary.
if [ -z "${VEXIL_BIN:-}" ]; then
  cargo build --quiet --release -p vexil --locked
  VEXIL_BIN="${CARGO_TARGET_DIR:-target}/release/vexil"
fi
report_dir="${VEXIL_LH_REPORT_DIR:-${CARGO_TARGET_DIR:-target}/lighthouse}"
mkdir -p "$report_dir"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_token="vx_pat_lighthouse-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"

echo "== starting $VEXIL_BIN on $base (SQLite)"
VEXIL_BOOTSTRAP_TOKEN="$admin_token" "$VEXIL_BIN" serve --listen "127.0.0.1:$port" \
  --database-url "sqlite://$work/vexil.db" --log-format pretty >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server did not start" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$base/ready" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

api() { # METHOD PATH [BODY]
  local args=(-fsS -X "$1" "$base$2" -H "Authorization: Bearer $admin_token")
  if [ $# -ge 3 ]; then args+=(-H 'Content-Type: application/json' --data "$3"); fi
  curl "${args[@]}"
}
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }

# Data: a page of flags of each type with tags, one of them with rules in production.
echo "== creating flags"
org_id="$(api GET /api/v1/organizations | json '[o for o in d["items"] if o["key"] == "default"][0]["id"]')"
project_id="$(api GET /api/v1/projects | json '[p for p in d["items"] if p["key"] == "default"][0]["id"]')"
env_id="$(api GET "/api/v1/projects/$project_id/environments" | json '[e for e in d["items"] if e["key"] == "production"][0]["id"]')"
flag_id="$(api POST "/api/v1/projects/$project_id/feature-flags" \
  '{"key": "checkout-redesign", "name": "Checkout redesign", "description": "The new one-page checkout.", "tags": ["checkout", "web"], "client_side": true}' | json 'd["id"]')"
api PATCH "/api/v1/flags/$flag_id/environments/$env_id/config" '{
  "enabled": true,
  "targets": [{"variation": "on", "values": ["user-1", "user-2"]}],
  "rules": [
    {"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}], "serve": {"variation": "on"}},
    {"clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
     "serve": {"rollout": {"variations": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}}
  ],
  "fallthrough": {"variation": "off"}
}' >/dev/null
api POST "/api/v1/projects/$project_id/feature-flags" \
  '{"key": "theme", "type": "string", "tags": ["web"], "variations": [{"key": "light", "value": "light"}, {"key": "dark", "value": "dark"}]}' >/dev/null
api POST "/api/v1/projects/$project_id/feature-flags" \
  '{"key": "search-page-size", "type": "number", "variations": [{"key": "small", "value": 20}, {"key": "large", "value": 50}]}' >/dev/null
for i in $(seq -w 1 40); do
  api POST "/api/v1/projects/$project_id/feature-flags" \
    "{\"key\": \"flag-$i\", \"name\": \"Flag $i\", \"description\": \"Rolls out change $i.\", \"tags\": [\"team-$((10#$i % 4))\"]}" >/dev/null
done

# A signed-in session, as a browser gets one: the sign-in form (its token in a hidden
# field and a cookie), the forced change of the one-time password, a second sign-in.
echo "== signing in through the console"
email=lighthouse@example.com
password="$(api POST "/api/v1/organizations/$org_id/members" "{\"email\": \"$email\", \"role\": \"admin\"}" | json 'd["password"]')"
new_password="lighthouse-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
jar="$work/cookies.txt"
field() { # NAME: the value of the form field NAME in the HTML on stdin
  python3 -c '
import re, sys
html, name = sys.stdin.read(), sys.argv[1]
for tag in re.findall(r"<input\b[^>]*>", html):
    if re.search(r"\bname=\"%s\"" % re.escape(name), tag):
        print(re.search(r"\bvalue=\"([^\"]*)\"", tag).group(1)); break
else:
    sys.exit("no field " + name)' "$1"
}
sign_in() { # PASSWORD
  local token
  token="$(curl -fsS -c "$jar" -b "$jar" "$base/ui/login" | field token)"
  curl -sS -o /dev/null -c "$jar" -b "$jar" "$base/ui/login" --data-urlencode "token=$token" \
    --data-urlencode next=/ui/ --data-urlencode "email=$email" --data-urlencode "password=$1"
}
sign_in "$password"
csrf="$(curl -fsS -b "$jar" "$base/ui/account" | field csrf)"
status="$(curl -sS -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" "$base/ui/account/password" \
  --data-urlencode "csrf=$csrf" --data-urlencode "current_password=$password" \
  --data-urlencode "new_password=$new_password" --data-urlencode "repeat_password=$new_password")"
[ "$status" = 303 ] || { echo "the password change answered $status" >&2; exit 1; }
sign_in "$new_password"
session="$(awk -F'\t' '$6 == "vexil_session" { print $7 }' "$jar" | tail -n 1)"
[ -n "$session" ] || { echo "no session cookie after signing in" >&2; exit 1; }
for page in "${pages[@]}"; do
  status="$(curl -sS -o /dev/null -w '%{http_code}' -H "Cookie: vexil_session=$session" "$base$page")"
  [ "$status" = 200 ] || { echo "$page answered $status with the session cookie" >&2; exit 1; }
done
printf '{"Cookie": "vexil_session=%s"}\n' "$session" >"$work/headers.json"

echo "== lighthouse $LIGHTHOUSE_VERSION ($preset), $("$CHROME_PATH" --version 2>/dev/null | head -n 1)"
preset_args=()
if [ "$preset" = desktop ]; then preset_args=(--preset=desktop); fi
reports=()
for page in "${pages[@]}"; do
  name="$(echo "${page#/ui/}" | tr '/' '_')-$preset"
  "$lighthouse" "$base$page" --quiet --only-categories=performance,accessibility \
    "${preset_args[@]}" --extra-headers="$work/headers.json" \
    --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage" \
    --output=json --output=html --output-path="$report_dir/$name"
  reports+=("$report_dir/$name.report.json")
done

if grep -q -E 'ERROR|panicked' "$work/server.log"; then
  echo "== server errors logged during the run:"
  grep -E 'ERROR|panicked' "$work/server.log" | head -n 50
fi

# The scores; every audit below 100 that counts in them (there should be none), with the
# elements or resources it names; then the diagnostics that do not count but failed.
python3 - "${reports[@]}" <<'EOF'
import json, sys

def describe(item):
    node = item.get("node") if isinstance(item.get("node"), dict) else None
    if node:
        parts = [node.get("selector", ""), node.get("snippet", "")]
        if node.get("explanation"):
            parts.append(node["explanation"].replace("\n", " "))
        return "  |  ".join(p for p in parts if p)
    if "statistic" in item:
        value = item.get("value")
        return f"{item['statistic']}: {value.get('value') if isinstance(value, dict) else value}"
    if "reason" in item:
        return f"{item['reason']} ({item.get('failureType', '')})"
    for key in ("url", "source", "label", "description"):
        value = item.get(key)
        if isinstance(value, dict):
            value = value.get("url") or value.get("value")
        if value:
            extra = [f"{k}={item[k]}" for k in ("wastedMs", "wastedBytes", "totalBytes", "duration") if k in item]
            return f"{value} {' '.join(extra)}".strip()
    return json.dumps(item)[:200]

def items_of(details):
    if not details:
        return []
    if details.get("type") == "list":
        return [i for sub in details.get("items", []) for i in items_of(sub)]
    return details.get("items", []) or []

def show(cid, ref, audit):
    value = f" ({audit['displayValue']})" if audit.get("displayValue") else ""
    print(f"    [{cid}] {ref['id']}: {audit['title']}{value}, score {audit['score']:.2f}")
    for item in items_of(audit.get("details"))[:10]:
        print(f"        - {describe(item)}")

for path in sys.argv[1:]:
    r = json.load(open(path))
    cats = r["categories"]
    print(f"\n{r['finalDisplayedUrl']}  ({path.rsplit('/', 1)[-1].replace('.report.json', '')})")
    print("  " + "  ".join(f"{c['title']}: {round(c['score'] * 100) if c['score'] is not None else 'n/a'}" for c in cats.values()))
    metrics = [r["audits"][ref["id"]] for ref in cats.get("performance", {}).get("auditRefs", []) if ref.get("group") == "metrics"]
    if metrics:
        print("  " + ", ".join(f"{m['title']} {m.get('displayValue', '')}" for m in metrics))
    failed, diagnostics = [], []
    for cid, cat in cats.items():
        for ref in cat["auditRefs"]:
            audit = r["audits"][ref["id"]]
            if audit["scoreDisplayMode"] in ("notApplicable", "manual", "informative") or audit["score"] is None:
                continue
            if audit["score"] < 1 and ref.get("group") != "hidden":
                (failed if ref.get("weight", 0) > 0 else diagnostics).append((cid, ref, audit))
    print(f"  audits below 100 that count in the scores: {len(failed) or 'none'}")
    for f in failed:
        show(*f)
    if diagnostics:
        print("  diagnostics (no weight in the scores):")
        for d in diagnostics:
            show(*d)
print(f"\nreports: {', '.join(p.replace('.json', '.html') for p in sys.argv[1:])}")
EOF
