{{/* Names, labels and images shared by every template. */}}

{{- define "quote.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quote.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "quote.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "quote.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", e.g. quote-gateway. */}}
{{- define "quote.component" -}}
{{- printf "%s-%s" (include "quote.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quote.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quote
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: {{ include "quote.selectorLabels" (dict "root" $ "component" "gateway") }} */}}
{{- define "quote.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quote.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "quote.componentLabels" -}}
{{ include "quote.labels" .root }}
{{ include "quote.selectorLabels" . }}
{{- end -}}

{{- define "quote.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "quote.cudaImage" -}}
{{- default (printf "%s-cuda" (include "quote.image" .)) .Values.operator.serving.cudaImage -}}
{{- end -}}

{{- define "quote.registryUrl" -}}
{{- printf "http://%s.%s.svc" (include "quote.component" (dict "root" . "component" "registry")) .Release.Namespace -}}
{{- end -}}

{{/* Where components send traces: the explicit endpoint, else the bundled collector, else nowhere. */}}
{{- define "quote.otlpEndpoint" -}}
{{- if .Values.telemetry.otlpEndpoint -}}
{{- .Values.telemetry.otlpEndpoint -}}
{{- else if .Values.otelCollector.enabled -}}
{{- printf "http://%s.%s.svc:4318" (include "quote.component" (dict "root" . "component" "otel-collector")) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "quote.telemetryEnv" -}}
{{- $endpoint := include "quote.otlpEndpoint" . -}}
{{- if $endpoint -}}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.telemetry.sampleRatio | quote }}
{{- else -}}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end -}}
{{- end -}}

{{/* Pod and container hardening shared by our own (non-database) pods: values.yaml `securityContext`. */}}
{{- define "quote.podSecurityContext" -}}
{{- toYaml .Values.securityContext.pod -}}
{{- end -}}

{{- define "quote.containerSecurityContext" -}}
{{- toYaml .Values.securityContext.container -}}
{{- end -}}

{{/* A container whose pod the chart does not write (KServe's ServingRuntime has no pod securityContext):
the pod settings a container can carry too, then the container's own. */}}
{{- define "quote.standaloneContainerSecurityContext" -}}
{{- $pod := pick .Values.securityContext.pod "runAsNonRoot" "runAsUser" "runAsGroup" "seccompProfile" "seLinuxOptions" "appArmorProfile" "windowsOptions" -}}
{{- toYaml (merge (deepCopy .Values.securityContext.container) $pod) -}}
{{- end -}}

{{- define "quote.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The route ConfigMap's name: fixed, because the operator and the gateway must agree on it. */}}
{{- define "quote.routesConfigMap" -}}quote-routes{{- end -}}

{{/* QUOTE_REGISTRY_DATABASE_URL: from the user's Secret, or built from the bundled PostgreSQL's password. */}}
{{- define "quote.registryDatabaseEnv" -}}
{{- $v := .root.Values -}}
{{- if $v.registry.database.existingSecret }}
- name: QUOTE_REGISTRY_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.registry.database.existingSecret }}, key: {{ $v.registry.database.existingSecretKey }}}
{{- else }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ default .pg $v.postgresql.existingSecret }}, key: password}
- name: QUOTE_REGISTRY_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(POSTGRES_PASSWORD)@%s.%s.svc:5432/%s" $v.postgresql.username .pg .root.Release.Namespace $v.postgresql.database | quote }}
{{- end }}
{{- end -}}

{{/* A monitor endpoint's bearer token for /metrics (metrics.tokenSecret, key "token"), if set. */}}
{{- define "quote.metricsAuthorization" -}}
{{- with .Values.metrics.tokenSecret }}
authorization:
  type: Bearer
  credentials: {name: {{ . }}, key: token}
{{- end }}
{{- end }}
