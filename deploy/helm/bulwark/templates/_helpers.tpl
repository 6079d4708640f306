{{/* Names and labels. */}}
{{- define "bulwark.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bulwark.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bulwark.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bulwark.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bulwark.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bulwark.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Host header values Bulwark accepts (DNS-rebinding defence: an exact allow-list). */}}
{{- define "bulwark.allowedHosts" -}}
{{- $port := int .Values.port -}}
{{- $svcPort := int .Values.service.port -}}
{{- $fullname := include "bulwark.fullname" . -}}
{{- $hosts := list (printf "localhost:%d" $port) (printf "127.0.0.1:%d" $port) (printf "${POD_IP}:%d" $port) -}}
{{- range $name := list $fullname (printf "%s.%s" $fullname .Release.Namespace) (printf "%s.%s.svc" $fullname .Release.Namespace) (printf "%s.%s.svc.cluster.local" $fullname .Release.Namespace) -}}
{{- $hosts = append $hosts (printf "%s:%d" $name $svcPort) -}}
{{- if eq $svcPort 80 -}}
{{- $hosts = append $hosts $name -}}
{{- end -}}
{{- end -}}
{{- concat $hosts .Values.allowedHosts | uniq | toJson -}}
{{- end -}}

{{/* bulwark.yaml: what the chart decides, with .Values.config merged over it. */}}
{{- define "bulwark.config" -}}
{{- $http := dict "host" "0.0.0.0" "port" (int .Values.port) "allowed_hosts" (include "bulwark.allowedHosts" . | fromJsonArray) -}}
{{- $auth := dict "http" "api_key" "store" "postgres" "postgres_url" "${KEYS_DATABASE_URL}" -}}
{{- $audit := dict "backend" .Values.audit.backend "durability" .Values.audit.durability "stream" "${POD_NAME}" "path" "/var/lib/bulwark/audit/audit.jsonl" -}}
{{- if eq .Values.audit.backend "postgres" -}}
{{- $_ := set $audit "postgres_url" "${AUDIT_DATABASE_URL}" -}}
{{- end -}}
{{- if .Values.audit.checkpoint.existingSecret -}}
{{- $_ := set $audit "checkpoint" (dict "private_key" "/etc/bulwark/checkpoint/private-key") -}}
{{- end -}}
{{- $cfg := dict "server" (dict "transport" "http" "http" $http) "auth" $auth "audit" $audit "filesystem" (dict "roots" (list "/srv/bulwark/data")) -}}
{{- if .Values.database.enabled -}}
{{- $_ := set $cfg "database" (dict "url" "${DATABASE_URL}" "embedded" false) -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $cfg "limits" (dict "store" "redis" "redis_url" "${REDIS_URL}" "api_cache" (dict "store" "redis")) -}}
{{- end -}}
{{- if ne .Values.policy.source "image" -}}
{{- $_ := set $cfg "policy" (dict "wasm" "/etc/bulwark/policy/policy.wasm" "data" "/etc/bulwark/policy/data.json") -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy .Values.config)) -}}
{{- end -}}

{{- define "bulwark.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s: name an existing Secret" .what) .secret | quote }}
      key: {{ .key | quote }}
{{- end -}}
