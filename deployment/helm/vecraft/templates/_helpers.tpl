{{/*
Names, labels and the URLs the roles give each other. Every workload runs the Vecraft
image with `vecraft serve <role>` (its entrypoint); the flags each role gets mirror
services/cli/src/cluster/roles.ts (the local launcher's table), with pod DNS names in place
of 127.0.0.1 ports.
*/}}

{{- define "vecraft.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-vecraft, or the release name when it already contains "vecraft". */}}
{{- define "vecraft.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vecraft.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vecraft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include "vecraft.selectorLabels" (list . "storage") */}}
{{- define "vecraft.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "vecraft.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "vecraft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Service (and headless Service) names. */}}
{{- define "vecraft.etcdName" -}}{{ include "vecraft.fullname" . }}-etcd{{- end -}}
{{- define "vecraft.metaName" -}}{{ include "vecraft.fullname" . }}-meta-manager{{- end -}}
{{- define "vecraft.journalName" -}}{{ include "vecraft.fullname" . }}-journal{{- end -}}
{{- define "vecraft.storageName" -}}{{ include "vecraft.fullname" . }}-storage{{- end -}}
{{- define "vecraft.queryName" -}}{{ include "vecraft.fullname" . }}-query{{- end -}}
{{- define "vecraft.gatewayName" -}}{{ include "vecraft.fullname" . }}-gateway{{- end -}}

{{/* <service>.<namespace>.svc.<domain> */}}
{{- define "vecraft.svcDomain" -}}
{{- printf "%s.svc.%s" .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* etcd client URLs, comma-separated: each member's stable DNS name, or the external ones. */}}
{{- define "vecraft.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- $name := include "vecraft.etcdName" . -}}
{{- $domain := include "vecraft.svcDomain" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s:%d" $name $i $name $domain (int $.Values.etcd.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- required "etcd.externalEndpoints is required when etcd.enabled is false" (join "," .Values.etcd.externalEndpoints) -}}
{{- end -}}
{{- end -}}

{{- define "vecraft.metaUrl" -}}
{{- printf "http://%s.%s:%d" (include "vecraft.metaName" .) (include "vecraft.svcDomain" .) (int .Values.metaManager.port) -}}
{{- end -}}

{{- define "vecraft.journalUrl" -}}
{{- printf "http://%s.%s:%d" (include "vecraft.journalName" .) (include "vecraft.svcDomain" .) (int .Values.journal.port) -}}
{{- end -}}

{{- define "vecraft.queryUrl" -}}
{{- printf "http://%s.%s:%d" (include "vecraft.queryName" .) (include "vecraft.svcDomain" .) (int .Values.query.port) -}}
{{- end -}}

{{/*
The environment of every Vecraft container: the pod's name (its node id: VECRAFT_NODE_ID,
which the services read), namespace and IP, usable as $(POD_NAME) etc. in args.
*/}}
{{- define "vecraft.podEnv" -}}
- name: POD_NAME
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: POD_NAMESPACE
  valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
- name: POD_IP
  valueFrom: { fieldRef: { fieldPath: status.podIP } }
- name: VECRAFT_NODE_ID
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
{{- end -}}

{{/* Flags every Vecraft service gets (after its role). */}}
{{- define "vecraft.commonArgs" -}}
- --host=0.0.0.0
- --log-level={{ .Values.logLevel }}
- --shutdown-grace-ms={{ int .Values.shutdownGraceMs }}
{{- end -}}

{{/*
Probes on the container's "http" port: liveness /healthz, readiness /readyz (200 once the
service can serve; false again as soon as it is told to stop). The startup probe gives a
journal or storage node recovering a large data directory up to 10 minutes.
include "vecraft.probes" (dict "scheme" "HTTP")
*/}}
{{- define "vecraft.probes" -}}
startupProbe:
  httpGet: { path: /healthz, port: http, scheme: {{ .scheme }} }
  periodSeconds: 5
  failureThreshold: 120
livenessProbe:
  httpGet: { path: /healthz, port: http, scheme: {{ .scheme }} }
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: { path: /readyz, port: http, scheme: {{ .scheme }} }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* The pod-level fields shared by every Vecraft workload. */}}
{{- define "vecraft.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
An init container that waits until a URL answers 200, for the roles that exit when what
they need is unreachable at start (the meta-manager without etcd, a storage node without
the journal) rather than crash-loop with a growing back-off. The others retry on their own. include "vecraft.waitFor" (dict "root" $ "what" "etcd" "url" URL)
*/}}
{{- define "vecraft.waitFor" -}}
- name: wait-for-{{ .what }}
  image: {{ include "vecraft.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command:
    - node
    - -e
    - |
      const url = process.argv[1];
      const tick = () => fetch(url, { signal: AbortSignal.timeout(2000) })
        .then((r) => { if (r.status === 200) process.exit(0); throw new Error(`HTTP ${r.status}`); })
        .catch((e) => { console.error(`waiting for ${url}: ${e.message}`); setTimeout(tick, 2000); });
      tick();
    - {{ .url | quote }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
{{- end -}}
