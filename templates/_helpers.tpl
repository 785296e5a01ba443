{{/* Names, labels and shared pod parts of the Shards chart. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "shards.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The object name prefix: fullnameOverride, the release name when it holds the chart name,
     else <release>-<chart>. Kept at 40 characters so that "-worker-<pool>" still fits. */}}
{{- define "shards.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shards.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "shards.labels" -}}
helm.sh/chart: {{ include "shards.chart" . }}
{{ include "shards.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shards
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "shards.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shards.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Operator names. */}}
{{- define "shards.operator.fullname" -}}
{{- printf "%s-operator" (include "shards.fullname" .) -}}
{{- end -}}

{{- define "shards.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "shards.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shards.operator.selectorLabels" -}}
{{ include "shards.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Worker names. */}}
{{- define "shards.worker.serviceAccountName" -}}
{{- if .Values.worker.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "shards.fullname" .)) .Values.worker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.worker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Deployment (and PDB, HPA, ScaledObject) of a pool: call with (list $ $pool). */}}
{{- define "shards.worker.fullname" -}}
{{- $root := index . 0 -}}{{- $pool := index . 1 -}}
{{- printf "%s-worker-%s" (include "shards.fullname" $root) $pool.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shards.worker.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $pool := index . 1 -}}
{{ include "shards.selectorLabels" $root }}
app.kubernetes.io/component: worker
shards.dev/pool: {{ $pool.name }}
{{- end -}}

{{/* The image reference: call with (list $ .Values.operator.image) or a pool's merged image. */}}
{{- define "shards.image" -}}
{{- $root := index . 0 -}}{{- $image := index . 1 -}}
{{- $tag := default $root.Chart.AppVersion $image.tag -}}
{{- if $image.registry -}}
{{- printf "%s/%s:%s" $image.registry $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret that holds the MongoDB URI, and its key. Exactly one of mongo.uri and
     mongo.existingSecret must be given. */}}
{{- define "shards.mongo.validate" -}}
{{- if and .Values.mongo.uri .Values.mongo.existingSecret -}}
{{- fail "mongo: give only one of mongo.uri and mongo.existingSecret" -}}
{{- end -}}
{{- if not (or .Values.mongo.uri .Values.mongo.existingSecret) -}}
{{- fail "mongo.uri or mongo.existingSecret is required: the MongoDB URI (pass it with --set mongo.uri=... or a private values file), or the name of a Secret that holds it" -}}
{{- end -}}
{{- end -}}

{{- define "shards.mongo.secretName" -}}
{{- include "shards.mongo.validate" . -}}
{{- if .Values.mongo.existingSecret -}}
{{- .Values.mongo.existingSecret -}}
{{- else -}}
{{- printf "%s-mongo" (include "shards.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment every Shards container gets: the MongoDB URI from the Secret. */}}
{{- define "shards.mongo.env" -}}
- name: SHARDS_MONGO_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "shards.mongo.secretName" . }}
      key: {{ .Values.mongo.existingSecretKey }}
{{- end -}}

{{/* Volumes and mounts every pod gets: /tmp, and the MongoDB CA when mongo.tls.caSecret is set. */}}
{{- define "shards.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.mongo.tls.caSecret }}
- name: mongo-tls
  secret:
    secretName: {{ .Values.mongo.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.mongo.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "shards.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.mongo.tls.caSecret }}
- name: mongo-tls
  mountPath: {{ .Values.mongo.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Hardened pod and container security contexts, the same on every pod. */}}
{{- define "shards.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shards.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* KEDA: the MongoDB filter of a pool's pending launches. It must equal
     shards_store.requests.pending_launches_filter(pool) in store/shards_store/requests.py
     (collection "requests", see Store.requests); tests/e2e/test_chart.py keeps them equal. */}}
{{- define "shards.keda.collection" -}}requests{{- end -}}

{{- define "shards.keda.pendingLaunchesQuery" -}}
{{- /* targetWorker "": launches are never addressed to one worker (keeps the count on the claim index). */ -}}
{{- dict "state" "Pending" "kind" "launch" "targetWorker" "" "pool" . | toJson -}}
{{- end -}}

{{/* True when any pool has KEDA autoscaling on. */}}
{{- define "shards.keda.anyPool" -}}
{{- range .Values.workers -}}
{{- if and .autoscaling .autoscaling.keda .autoscaling.keda.enabled -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy parts: egress every pod needs (MongoDB, DNS), and ingress to a metrics port. */}}
{{- define "shards.networkPolicy.commonEgress" -}}
# MongoDB.
- to:
    {{- toYaml .Values.networkPolicy.mongo.to | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.mongo.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
# DNS, to resolve MongoDB's host names.
- to:
    {{- toYaml .Values.networkPolicy.dns.to | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.dns.ports }}
    - protocol: UDP
      port: {{ . }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end -}}
{{- define "shards.networkPolicy.metricsIngress" -}}
{{- $root := index . 0 -}}{{- $port := index . 1 -}}
- ports:
    - protocol: TCP
      port: {{ $port }}
  {{- with $root.Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Dashboard names. */}}
{{- define "shards.dashboard.fullname" -}}
{{- printf "%s-dashboard" (include "shards.fullname" .) -}}
{{- end -}}

{{- define "shards.dashboard.selectorLabels" -}}
{{ include "shards.selectorLabels" . }}
app.kubernetes.io/component: dashboard
{{- end -}}

{{/* Monitoring: the Prometheus Operator's API is there, and monitoring is on. */}}
{{- define "shards.monitoring.enabled" -}}
{{- if and .Values.monitoring.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{- define "shards.monitoring.labels" -}}
{{ include "shards.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Grafana dashboard's ConfigMap: its name, and its namespace (the release's unless set). */}}
{{- define "shards.grafanaDashboard.fullname" -}}
{{- printf "%s-grafana-dashboard" (include "shards.fullname" .) -}}
{{- end -}}

{{- define "shards.grafanaDashboard.namespace" -}}
{{- default .Release.Namespace .Values.grafana.dashboard.namespace -}}
{{- end -}}
