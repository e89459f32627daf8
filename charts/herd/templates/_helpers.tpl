{{/* The release's base name, at most 63 characters (DNS label), as `helm create` makes it. */}}
{{- define "herd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herd.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "herd.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository:tag or repository@digest; pass (dict "image" .Values.image "ctx" $ "suffix" ""). */}}
{{- define "herd.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) (.suffix | default "") -}}
{{- end -}}
{{- end -}}

{{- define "herd.image" -}}
{{- include "herd.imageRef" (dict "image" .Values.image "ctx" .) -}}
{{- end -}}

{{- define "herd.trainerImage" -}}
{{- $suffix := ternary (printf "-%s" .Values.trainer.image.variant) "" (ne .Values.trainer.image.variant "") -}}
{{- include "herd.imageRef" (dict "image" .Values.trainer.image "ctx" . "suffix" $suffix) -}}
{{- end -}}

{{- define "herd.operatorServiceAccount" -}}
{{- .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "herd.fullname" .)) -}}
{{- end -}}
{{- define "herd.workerServiceAccount" -}}
{{- .Values.worker.serviceAccount.name | default (printf "%s-worker" (include "herd.fullname" .)) -}}
{{- end -}}
{{- define "herd.trainerServiceAccount" -}}
{{- .Values.trainer.serviceAccount.name | default (printf "%s-trainer" (include "herd.fullname" .)) -}}
{{- end -}}

{{/* The namespaces the worker runs pods in (a list). */}}
{{- define "herd.workerNamespaces" -}}
{{- if .Values.worker.namespaces -}}
{{- toYaml (uniq .Values.worker.namespaces) -}}
{{- else -}}
{{- toYaml (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* Temporal: address, namespace, and the mTLS files when enabled. */}}
{{- define "herd.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ required "temporal.address is required (host:port of the Temporal frontend)" .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- if .Values.temporal.tls.enabled }}
- name: TEMPORAL_TLS
  value: "true"
{{- if .Values.temporal.tls.secretName }}
- name: TEMPORAL_TLS_CERT
  value: /etc/herd/temporal-tls/tls.crt
- name: TEMPORAL_TLS_KEY
  value: /etc/herd/temporal-tls/tls.key
- name: TEMPORAL_TLS_CA
  value: /etc/herd/temporal-tls/ca.crt
{{- end }}
{{- with .Values.temporal.tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The volumes every herd pod has: a writable /tmp (the root filesystem is read-only), and the Temporal client certificate. */}}
{{- define "herd.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "herd.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  mountPath: /etc/herd/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The RBAC rule on herd's kinds that each role needs. */}}
{{- define "herd.kinds" -}}
[trainingjobs, evaljobs, evalsweeps]
{{- end -}}

{{- define "herd.workerRules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [herd.dev]
  resources: [trainingjobs/status, evaljobs/status, evalsweeps/status]
  verbs: [patch]
{{- end -}}
