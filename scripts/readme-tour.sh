#!/usr/bin/env bash
# Runs the README's five-minute tour against a fresh server and checks the outputs the
# README shows: builds `vexil` (debug), starts `vexil serve` on a SQLite database in a
# temporary directory and a free port, runs every command of the tour with curl and jq,
# asserts what it prints, and stops the server on exit. Keep it in step with README.md.
#
#   scripts/readme-tour.sh                          # build, then run the tour
#   VEXIL_BIN=target/release/vexil scripts/readme-tour.sh   # use a binary already built
#   scripts/readme-tour.sh --sdk                    # also run the Rust SDK quick start
#
# Needs curl, jq and openssl (and cargo, unless VEXIL_BIN is given). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WITH_SDK=false
for arg in "$@"; do
  case "$arg" in
    --sdk) WITH_SDK=true ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

for tool in curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "the tour needs $tool" >&2; exit 1; }
done

TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
if [[ -z "${VEXIL_BIN:-}" ]]; then
  echo "== building vexil"
  cargo build -p vexil
  VEXIL_BIN="$TARGET_DIR/debug/vexil"
fi
if $WITH_SDK; then
  echo "== building the SDK quick start"
  cargo build -p vexil-sdk-quickstart
fi

WORK=$(mktemp -d)
SERVER_PID=
SDK_PID=
cleanup() {
  [[ -n "$SDK_PID" ]] && kill "$SDK_PID" 2>/dev/null || true
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# Port 0: the system picks a free port, which the server logs as it starts listening.
VEXIL_BOOTSTRAP_TOKEN=my-admin-token-for-the-five-minute-tour VEXIL_LOG_FORMAT=json \
  "$VEXIL_BIN" serve --listen 127.0.0.1:0 --database-url "sqlite://$WORK/vexil.db" \
  >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDRESS=
for _ in $(seq 1 300); do
  ADDRESS=$(jq -r 'select(.message == "vexil is listening") | .address' "$WORK/server.log" 2>/dev/null || true)
  [[ -n "$ADDRESS" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "vexil serve exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$ADDRESS" ]] || { echo "vexil serve did not start listening" >&2; exit 1; }
echo "== vexil serve on $ADDRESS (database in $WORK)"

CHECKS=0
# expect WHAT ACTUAL EXPECTED
expect() {
  if [[ "$2" != "$3" ]]; then
    printf 'FAILED: %s\n  expected: %s\n  actual:   %s\n' "$1" "$3" "$2" >&2
    exit 1
  fi
  CHECKS=$((CHECKS + 1))
  printf '  ok  %s\n' "$1"
}

# ---- The tour, command by command (README.md, "A five-minute tour"). ----------------------

export VEXIL="http://$ADDRESS" AUTH="Authorization: Bearer my-admin-token-for-the-five-minute-tour"

PROJECT=$(curl -s -H "$AUTH" $VEXIL/api/v1/projects | jq -r '.items[0].id')
PROD=$(curl -s -H "$AUTH" $VEXIL/api/v1/projects/$PROJECT/environments | jq -r '.items[] | select(.key=="production") | .id')
expect "the first start made a project with a production environment" \
  "$( [[ -n "$PROJECT" && -n "$PROD" && "$PROD" != null ]] && echo yes)" yes

FLAG=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"key": "new-checkout", "name": "New checkout", "comment": "JIRA-123"}' \
  $VEXIL/api/v1/projects/$PROJECT/feature-flags | jq -r .id)
expect "the flag is created" "$( [[ -n "$FLAG" && "$FLAG" != null ]] && echo yes)" yes

OUT=$(curl -s -X PATCH -H "$AUTH" -H 'Content-Type: application/json' -d '{
  "enabled": true,
  "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
             "serve": {"variation": "on"}}],
  "fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 25000},
                                             {"variation": "off", "weight": 75000}]}},
  "comment": "staff + 25 %"}' \
  $VEXIL/api/v1/flags/$FLAG/environments/$PROD/config | jq -c '{enabled, version, rule_id: .rules[0].id}')
RULE=$(jq -r .rule_id <<<"$OUT")
expect "staff rule and rollout configured" "$OUT" "{\"enabled\":true,\"version\":2,\"rule_id\":\"$RULE\"}"
expect "the server named the rule" "$( [[ "$RULE" =~ ^[0-9a-f]{8}$ ]] && echo yes)" yes

KEY=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"name\": \"checkout service\", \"type\": \"server\", \"environment_id\": \"$PROD\"}" \
  $VEXIL/api/v1/projects/$PROJECT/api-keys | jq -r .key)
expect "a server key" "${KEY:0:7}" "vx_srv_"

OUT=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"flag_key": "new-checkout", "context": {"targetingKey": "user-1", "email": "ann@acme.com"}}' \
  $VEXIL/api/v1/evaluate | jq -c)
expect "the staff rule serves Ann" "$OUT" \
  "{\"flag_key\":\"new-checkout\",\"value\":true,\"variation\":\"on\",\"reason\":{\"kind\":\"RULE_MATCH\",\"rule_id\":\"$RULE\",\"rule_index\":0,\"in_rollout\":false},\"flag_version\":2}"

OUT=$(for user in user-2 user-6; do
  curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"flag_key\": \"new-checkout\", \"context\": {\"targetingKey\": \"$user\", \"email\": \"$user@example.com\"}}" \
    $VEXIL/api/v1/evaluate | jq -c '{value, reason}'
done)
expect "the rollout: user-2 out, user-6 in" "$OUT" \
  '{"value":false,"reason":{"kind":"FALLTHROUGH","in_rollout":true}}
{"value":true,"reason":{"kind":"FALLTHROUGH","in_rollout":true}}'

OUT=$(for i in $(seq 1 200); do
  curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"flag_key\": \"new-checkout\", \"context\": {\"targetingKey\": \"user-$i\"}}" $VEXIL/api/v1/evaluate
done | jq -s -c 'group_by(.value) | map({value: .[0].value, users: length})')
expect "about a quarter of 200 users" "$OUT" '[{"value":false,"users":154},{"value":true,"users":46}]'

OUT=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"context": {"targetingKey": "user-6"}}' $VEXIL/ofrep/v1/evaluate/flags/new-checkout | jq -c)
expect "OFREP" "$OUT" '{"key":"new-checkout","value":true,"reason":"SPLIT","variant":"on","metadata":{"flagVersion":2}}'

OUT=$(curl -s -H "Authorization: Bearer $KEY" $VEXIL/api/v1/sdk/config | jq -c '{version, flags: (.flags | keys)}')
expect "the SDK ruleset" "$OUT" '{"version":3,"flags":["new-checkout"]}'

# The stream does not end by itself: read it for a second.
OUT=$(curl -sN --max-time 1 -H "Authorization: Bearer $KEY" $VEXIL/api/v1/sdk/stream || true)
expect "the stream opens with a comment and a put" "$(sed -n '1p;3,4p' <<<"$OUT")" ': connected
event: put
id: 3'
expect "the put carries the ruleset" \
  "$(sed -n '5p' <<<"$OUT" | sed 's/^data: //' | jq -c '{version, flags: (.flags | keys), segments}')" \
  '{"version":3,"flags":["new-checkout"],"segments":{}}'
OUT=$(curl -s -X POST -H "Authorization: Bearer $KEY" $VEXIL/api/v1/sdk/ws-token | jq -r .url | cut -c1-26)
expect "a WebSocket token for browsers" "$OUT" '/api/v1/sdk/ws?token=vxst.'

OUT=$(curl -s -H "$AUTH" $VEXIL/api/v1/flags/$FLAG/environments/$PROD/config/revisions | jq -c '.items[] | {version, comment}')
expect "revisions" "$OUT" '{"version":2,"comment":"staff + 25 %"}
{"version":1,"comment":null}'
OUT=$(curl -s -H "$AUTH" "$VEXIL/api/v1/audit-logs?resource_id=$FLAG" | jq -c '.items[] | {action, actor: .actor.name, comment}')
expect "the flag's audit entries" "$OUT" '{"action":"flag_config.update","actor":"bootstrap","comment":"staff + 25 %"}
{"action":"flag.create","actor":"bootstrap","comment":"JIRA-123"}'
OUT=$(curl -s -H "$AUTH" $VEXIL/api/v1/audit-logs/verify | jq -c '{valid, first_broken}')
expect "the audit chain verifies" "$OUT" '{"valid":true,"first_broken":null}'

ORG=$(curl -s -H "$AUTH" $VEXIL/api/v1/organizations | jq -r '.items[0].id')
PASSWORD=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"email": "ann@acme.com", "role": "editor"}' $VEXIL/api/v1/organizations/$ORG/members | jq -r .password)
expect "Ann got a one-time password" "$( [[ ${#PASSWORD} -ge 12 && "$PASSWORD" != null ]] && echo yes)" yes

CSRF=$(curl -s -c ann.cookies -H 'Content-Type: application/json' \
  -d "{\"email\": \"ann@acme.com\", \"password\": \"$PASSWORD\"}" $VEXIL/api/v1/auth/login | jq -r .csrf_token)
expect "a CSRF token with the session" "$( [[ "$CSRF" =~ ^[0-9a-f]{64}$ ]] && echo yes)" yes
OUT=$(curl -s -b ann.cookies $VEXIL/api/v1/users/me | jq -c '{email: .user.email, roles: [.organizations[] | {key, role}]}')
expect "Ann's session" "$OUT" '{"email":"ann@acme.com","roles":[{"key":"default","role":"editor"}]}'

OUT=$(curl -s -o /dev/null -w '%{http_code}\n' -X PUT -b ann.cookies -H "X-CSRF-Token: $CSRF" \
  -H 'Content-Type: application/json' \
  -d "{\"current_password\": \"$PASSWORD\", \"new_password\": \"correct horse battery staple\"}" \
  $VEXIL/api/v1/users/me/password)
expect "the password change" "$OUT" 204
OUT=$(curl -s -o /dev/null -w '%{http_code}\n' -b ann.cookies $VEXIL/api/v1/users/me)
expect "the old session is gone" "$OUT" 401
CSRF=$(curl -s -c ann.cookies -H 'Content-Type: application/json' \
  -d '{"email": "ann@acme.com", "password": "correct horse battery staple"}' \
  $VEXIL/api/v1/auth/login | jq -r .csrf_token)
OUT=$(curl -s -b ann.cookies $VEXIL/api/v1/users/me | jq -r .user.email)
expect "the new password logs in" "$OUT" ann@acme.com

OUT=$(curl -s -X PATCH -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"watch_events": ["checkout_error"], "comment": "watch checkout errors"}' \
  $VEXIL/api/v1/flags/$FLAG/environments/$PROD/config | jq -c .watch_events)
expect "the flag watches checkout errors" "$OUT" '["checkout_error"]'
OUT=$(for i in $(seq 1 20); do echo "{\"key\": \"checkout_error\", \"context\": {\"targetingKey\": \"user-$i\"}}"; done \
  | jq -s -c '{events: .}' | curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d @- $VEXIL/api/v1/track | jq -c)
expect "tracked events are taken" "$OUT" '{"accepted":20,"ignored":[]}'
sleep 10
OUT=$(curl -s -H "$AUTH" "$VEXIL/api/v1/flags/$FLAG/environments/$PROD/insights" \
  | jq -c '.variations | map_values({evaluations, errors: .events.checkout_error.count})')
expect "evaluations and errors per variation" "$OUT" '{"off":{"evaluations":155,"errors":17},"on":{"evaluations":49,"errors":3}}'
CSV=$(curl -s -H "$AUTH" "$VEXIL/api/v1/flags/$FLAG/environments/$PROD/insights?format=csv")
expect "the CSV header" "$(head -1 <<<"$CSV" | tr -d '\r')" 'start,variation,metric,count,sum'
# The hour bucket's start varies; the rows after it do not (unless the tour crossed an hour).
expect "the CSV rows" "$(tail -n +2 <<<"$CSV" | tr -d '\r' | cut -d, -f2- | sort | tr '\n' ' ')" 'off,evaluations,155,0 off,event:checkout_error,17,0 on,evaluations,49,0 on,event:checkout_error,3,0 '

OUT=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"reason": "checkout errors"}' \
  $VEXIL/api/v1/feature-flags/$FLAG/kill-switch | jq -c '{changed, enabled: [.items[] | {(.environment_key): .enabled}] | add}')
expect "the kill switch" "$OUT" '{"changed":1,"enabled":{"development":false,"production":false}}'
OUT=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"flag_key": "new-checkout", "context": {"targetingKey": "user-1", "email": "ann@acme.com"}}' \
  $VEXIL/api/v1/evaluate | jq -c '{value, reason}')
expect "killed: off even for staff" "$OUT" '{"value":false,"reason":{"kind":"OFF","in_rollout":false}}'
OUT=$(curl -s -H "$AUTH" "$VEXIL/api/v1/audit-logs?resource_id=$FLAG&action=flag.kill_switch" | jq -c '.items[] | {action, comment}')
expect "the kill is audited with its reason" "$OUT" '{"action":"flag.kill_switch","comment":"checkout errors"}'

# ---- Release control: a scheduled change, and a change request approved by another. -------

BANNER=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"key": "holiday-banner"}' \
  $VEXIL/api/v1/projects/$PROJECT/feature-flags | jq -r .id)
OUT=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"execute_at\": \"$(date -u -d '+3 seconds' +%FT%TZ)\", \"patch\": {\"enabled\": true}, \"comment\": \"holiday launch\"}" \
  $VEXIL/api/v1/flags/$BANNER/environments/$PROD/scheduled-changes | jq -c '{status, by: .created_by.name}')
expect "the change is scheduled" "$OUT" '{"status":"pending","by":"bootstrap"}'
sleep 4
OUT=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"context": {"targetingKey": "user-1"}}' \
  $VEXIL/ofrep/v1/evaluate/flags/holiday-banner | jq -c '{value}')
expect "the scheduled change applied at its time" "$OUT" '{"value":true}'
STAGING=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"key": "staging", "requires_approval": true}' \
  $VEXIL/api/v1/projects/$PROJECT/environments | jq -r .id)
ANN=(-b ann.cookies -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json')
OUT=$(curl -s -X PATCH "${ANN[@]}" -d '{"enabled": true}' \
  $VEXIL/api/v1/flags/$BANNER/environments/$STAGING/config | jq -r .error.code)
expect "a direct change where approval is required" "$OUT" approval_required
CR=$(curl -s "${ANN[@]}" -d '{"patch": {"enabled": true}, "comment": "banner in staging"}' \
  $VEXIL/api/v1/flags/$BANNER/environments/$STAGING/change-requests | jq -r .id)
OUT=$(curl -s -X POST "${ANN[@]}" $VEXIL/api/v1/change-requests/$CR/approve | jq -r .error.message)
expect "the author cannot approve" "$OUT" "you proposed this change: another member must review it (you may cancel it); it cannot be approved by its author"
OUT=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"comment": "looks right"}' \
  $VEXIL/api/v1/change-requests/$CR/approve | jq -c '{status, reviews: [.reviews[].decision]}')
expect "another member approves" "$OUT" '{"status":"approved","reviews":["approve"]}'
OUT=$(curl -s -X POST "${ANN[@]}" $VEXIL/api/v1/change-requests/$CR/apply | jq -c '{status}')
expect "the author applies it" "$OUT" '{"status":"applied"}'
OUT=$(curl -s -H "$AUTH" "$VEXIL/api/v1/audit-logs?resource_id=$CR" | jq -r '[.items[].action] | reverse | join(" → ")')
expect "every step is audited" "$OUT" "change_request.create → change_request.approve → change_request.apply"

# ---- A release plan: stages by customer, rolled back by its guard. ------------------------

WIDGET=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"key": "chat-widget"}' \
  $VEXIL/api/v1/projects/$PROJECT/feature-flags | jq -r .id)
OUT=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"bucket_by": "customerId",
  "stages": [{"weight": 1000, "min_duration": "1h"}, {"weight": 10000, "min_duration": "1d"},
             {"weight": 50000, "min_duration": "1d"}, {"weight": 100000}],
  "guard": {"event": "error", "max_rate": 0.05, "min_samples": 50}, "comment": "chat widget"}' \
  $VEXIL/api/v1/flags/$WIDGET/environments/$PROD/release | jq -c '{status, weight, guard: .readings.message}')
expect "the release plan starts at 1 %" "$OUT" '{"status":"running","weight":1000,"guard":"waiting for 50 evaluations of on (0 so far)"}'
OUT=$(for i in 1 2; do curl -s -X POST -H "$AUTH" $VEXIL/api/v1/flags/$WIDGET/environments/$PROD/release/advance; done \
  | jq -c '{stage, weight}' | tr '\n' ' ')
expect "advanced by hand to 50 %" "$OUT" '{"stage":1,"weight":10000} {"stage":2,"weight":50000} '
for c in $(seq 1 200); do curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"context\": {\"targetingKey\": \"c-$c\", \"customerId\": \"c-$c\"}}" \
    $VEXIL/ofrep/v1/evaluate/flags/chat-widget | jq -r "select(.value) | \"c-$c\""; done > widget-users
expect "customers with the widget" "$(wc -l < widget-users)" 88
OUT=$(head -10 widget-users | jq -R '{key: "error", context: {targetingKey: ., customerId: .}}' | jq -s -c '{events: .}' \
  | curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d @- $VEXIL/api/v1/track | jq -c)
expect "ten errors tracked" "$OUT" '{"accepted":10,"ignored":[]}'
# The README sleeps 6 s (the guard checks every 5 s); a loaded machine may need longer.
for _ in $(seq 1 150); do
  OUT=$(curl -s -H "$AUTH" $VEXIL/api/v1/flags/$WIDGET/environments/$PROD/release | jq -c '{status, reason}')
  [[ "$OUT" == *rolled_back* ]] && break
  sleep 0.1
done
expect "the guard rolled the plan back" "$OUT" '{"status":"rolled_back","reason":"the guard tripped: error rate of on is 11.36% (10 of 88), above the 5% allowed"}'
OUT=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"context\": {\"targetingKey\": \"$(head -1 widget-users)\", \"customerId\": \"$(head -1 widget-users)\"}}" \
  $VEXIL/ofrep/v1/evaluate/flags/chat-widget | jq -c '{value, reason}')
expect "the control for everyone" "$OUT" '{"value":false,"reason":"STATIC"}'
OUT=$(curl -s -H "$AUTH" "$VEXIL/api/v1/audit-logs?resource_type=release" | jq -r '[.items[] | "\(.action) by \(.actor.name)"] | reverse | join(" → ")')
expect "the plan's steps are audited" "$OUT" "release.start by bootstrap → release.advance by bootstrap → release.advance by bootstrap → release.rollback by release guard"

# ---- Webhooks: a Slack-format message, and a signature checked by hand. -------------------

HOOK=$(curl -s -H "$AUTH" -H 'Content-Type: application/json' -d '{"name": "ops channel",
  "url": "https://hooks.slack.com/services/T000/B000/XXXX", "format": "slack",
  "events": ["flag.*", "config.updated", "release.rolled_back"]}' \
  $VEXIL/api/v1/projects/$PROJECT/webhooks | tee webhook.json | jq -r .id)
expect "the webhook's secret is shown once" "$(jq -r .secret webhook.json | cut -c1-6)" "whsec_"
expect "and never read back" "$(curl -s -H "$AUTH" $VEXIL/api/v1/webhooks/$HOOK | jq -r 'has("secret")')" false
curl -s -X PATCH -H "$AUTH" -H 'Content-Type: application/json' -d '{"enabled": false, "comment": "holiday over"}' \
  $VEXIL/api/v1/flags/$BANNER/environments/$PROD/config >/dev/null
sleep 1
DELIVERY=$(curl -s -H "$AUTH" $VEXIL/api/v1/webhooks/$HOOK/deliveries | jq -r '.items[0].id')
OUT=$(curl -s -H "$AUTH" $VEXIL/api/v1/webhooks/$HOOK/deliveries/$DELIVERY | jq -r '.event, .body' | sed "s#http://$ADDRESS/#http://127.0.0.1:8080/#")
expect "the Slack message" "$OUT" 'config.updated
{"text":"bootstrap disabled <http://127.0.0.1:8080/ui/default/default/flags/holiday-banner/in/production|holiday-banner> in production: holiday over"}'
OUT=$(SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ID=msg_p5jXN8AQM9LWM0D4loKWxJek TS=1614265330 BODY='{"test": 2432232314}'
printf '%s.%s.%s' "$ID" "$TS" "$BODY" | openssl dgst -sha256 -binary -mac HMAC \
  -macopt hexkey:$(printf '%s' "${SECRET#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n') | base64)
expect "a signature computed by hand" "$OUT" "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# ---- Flags as code: export, plan, apply, apply again (the CLI). -------------------------

export VEXIL_URL=$VEXIL VEXIL_TOKEN=my-admin-token-for-the-five-minute-tour
expect "vexil export" "$("$VEXIL_BIN" export -o flags.yaml)" "exported project 'default' (0 segments, 3 flags) to flags.yaml"
sed -i '/^- key: holiday-banner$/,/^- key:/{/production:/,/enabled:/s/enabled: false/enabled: true/}' flags.yaml
expect "the plan" "$("$VEXIL_BIN" apply -f flags.yaml --dry-run)" "~ update config holiday-banner in production
    - enabled: false
    + enabled: true
1 change planned (dry run: nothing changed)"
expect "applied" "$("$VEXIL_BIN" apply -f flags.yaml)" "~ update config holiday-banner in production
    - enabled: false
    + enabled: true
1 change applied"
expect "applied again: nothing" "$("$VEXIL_BIN" apply -f flags.yaml)" "nothing to change"
unset VEXIL_URL VEXIL_TOKEN

# ---- The Rust SDK quick start (optional). -------------------------------------------------

if $WITH_SDK; then
  echo "== the SDK quick start"
  VEXIL_URL=$VEXIL VEXIL_SERVER_KEY=$KEY "$TARGET_DIR/debug/vexil-sdk-quickstart" new-checkout 30 \
    >"$WORK/sdk.out" 2>&1 &
  SDK_PID=$!
  for _ in $(seq 1 100); do grep -q '^watching' "$WORK/sdk.out" && break; sleep 0.1; done
  expect "the quick start connected and is watching" "$(grep -c '^watching' "$WORK/sdk.out")" 1
  # Nothing changed since it connected: no change notice.
  sleep 1
  expect "no change notice for the ruleset it already has" "$(grep -c 'changed' "$WORK/sdk.out" || true)" 0
  expect "killed: both users get false" "$(grep -cE '= false +variation off +Off$' "$WORK/sdk.out")" 2
  curl -s -X PATCH -H "$AUTH" -H 'Content-Type: application/json' -d '{"enabled": true}' \
    $VEXIL/api/v1/flags/$FLAG/environments/$PROD/config/toggle >/dev/null
  for _ in $(seq 1 50); do grep -q 'RuleMatch' "$WORK/sdk.out" && break; sleep 0.1; done
  expect "one change notice after the toggle" "$(grep -c 'changed (ruleset version' "$WORK/sdk.out")" 1
  expect "staff by the rule" \
    "$(grep -cE 'for ann@acme.com \(staff\) += true +variation on +RuleMatch \(rule ' "$WORK/sdk.out")" 1
  expect "the other user by the rollout" \
    "$(grep -cE 'for bob@example.com += false +variation off +Fallthrough \(rollout\)' "$WORK/sdk.out")" 1
  kill "$SDK_PID" 2>/dev/null || true
  wait "$SDK_PID" 2>/dev/null || true
  SDK_PID=
  sed 's/^/  | /' "$WORK/sdk.out"
fi

echo "== the tour works: $CHECKS checks passed"
