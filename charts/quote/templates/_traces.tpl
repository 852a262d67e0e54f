{{/* What a serving replica needs to ship traces to the registry's trace store and sign share links.
Its key is the registry key (QUOTE_REGISTRY_API_KEY, a `service` key), which the operator sets. */}}
{{- define "quote.traceStoreEnv" -}}
{{- if and .Values.traces.ship .Values.registry.enabled -}}
- name: QUOTE_TRACE_STORE_URL
  value: {{ include "quote.registryUrl" . | quote }}
- name: QUOTE_REPLICA_NAME                    # names the replica in each shipped trace
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- end }}
{{- with .Values.traces.shareSecret }}
- name: QUOTE_SHARE_SECRET                    # read in the replica's namespace; missing there: no sharing
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: secret, optional: true}
{{- end }}
{{- end -}}
