{{/* The chart's name, or nameOverride. */}}
{{- define "vexil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: release-chart, unless the release already names the chart. */}}
{{- define "vexil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vexil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vexil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vexil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vexil.labels" -}}
helm.sh/chart: {{ include "vexil.chart" . }}
{{ include "vexil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vexil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vexil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vexil.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret the pods read: the user's, or the chart's. */}}
{{- define "vexil.secretName" -}}
{{- default (include "vexil.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The claim holding the SQLite file. */}}
{{- define "vexil.claimName" -}}
{{- default (printf "%s-data" (include "vexil.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "vexil.chartSecret" -}}
{{- if and (not .Values.existingSecret) (or (eq .Values.database.type "postgres") .Values.bootstrapToken .Values.metricsToken .Values.oidcClientSecret) -}}
true
{{- end }}
{{- end }}

{{/*
Refuses values that cannot work: checked once, from the Deployment.
*/}}
{{- define "vexil.validate" -}}
{{- $db := .Values.database.type }}
{{- if not (has $db (list "postgres" "sqlite")) }}
{{- fail (printf "database.type must be postgres or sqlite, not %q" $db) }}
{{- end }}
{{- if and (eq $db "sqlite") (ne (int .Values.replicaCount) 1) }}
{{- fail "database.type sqlite allows one replica only (SQLite is one file for one process): set replicaCount: 1, or use PostgreSQL" }}
{{- end }}
{{- if and (eq $db "postgres") (not .Values.existingSecret) }}
{{- if not .Values.database.url }}
{{- fail "database.url is required with database.type postgres (postgres://user:password@host:5432/db), or existingSecret naming a Secret that holds it" }}
{{- end }}
{{- if not (or (hasPrefix "postgres://" .Values.database.url) (hasPrefix "postgresql://" .Values.database.url)) }}
{{- fail "database.url must start with postgres:// or postgresql://" }}
{{- end }}
{{- end }}
{{- if and .Values.bootstrapToken (lt (len .Values.bootstrapToken) 32) }}
{{- fail "bootstrapToken must be at least 32 characters (openssl rand -hex 32): vexil serve refuses a shorter one" }}
{{- end }}
{{- end }}
