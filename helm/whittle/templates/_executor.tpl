{{/*
Kubernetes executor (executor.mode=kubernetes): the API creates one batch/v1 Job per compression job from the
worker pod template below, so there is no worker Deployment. The API pods then need their own service account
(bound to the executor's Role), its token, and the executor's ConfigMap mounted; the api Deployment takes these
from the helpers "whittle.executor.apiServiceAccount", "whittle.executor.apiEnv", "whittle.executor.apiVolumes",
"whittle.executor.apiVolumeMounts" and "whittle.executor.apiChecksum" (each renders nothing, or the local-mode
default, when executor.mode is local).
*/}}

{{- define "whittle.executor.kubernetes" -}}
{{- if eq .Values.executor.mode "kubernetes" }}true{{ end }}
{{- end }}

{{/* The API pods' service account: the executor's (allowed to manage Jobs) in kubernetes mode. */}}
{{- define "whittle.executor.apiServiceAccountName" -}}
{{- if include "whittle.executor.kubernetes" . }}
{{- printf "%s-api" (include "whittle.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "whittle.serviceAccountName" . }}
{{- end }}
{{- end }}

{{- define "whittle.executor.name" -}}
{{- printf "%s-executor" (include "whittle.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* API pod spec lines: the service account, and its token only where the executor calls the Kubernetes API. */}}
{{- define "whittle.executor.apiServiceAccount" -}}
serviceAccountName: {{ include "whittle.executor.apiServiceAccountName" . }}
automountServiceAccountToken: {{ include "whittle.executor.kubernetes" . | eq "true" }}
{{- end }}

{{/* API container env: the executor's Spring configuration (executor.yaml of the executor ConfigMap). */}}
{{- define "whittle.executor.apiEnv" -}}
{{- if include "whittle.executor.kubernetes" . }}
- name: SPRING_CONFIG_IMPORT
  value: file:/etc/whittle/executor/executor.yaml
{{- end }}
{{- end }}

{{- define "whittle.executor.apiVolumes" -}}
{{- if include "whittle.executor.kubernetes" . }}
- name: executor
  configMap:
    name: {{ include "whittle.executor.name" . }}
{{- end }}
{{- end }}

{{- define "whittle.executor.apiVolumeMounts" -}}
{{- if include "whittle.executor.kubernetes" . }}
- name: executor
  mountPath: /etc/whittle/executor
  readOnly: true
{{- end }}
{{- end }}

{{/* Pod annotation that rolls the API pods when the executor's configuration changes. */}}
{{- define "whittle.executor.apiChecksum" -}}
{{- if include "whittle.executor.kubernetes" . }}
checksum/executor: {{ include (print $.Template.BasePath "/executor-configmap.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
The worker pod template of every Job: the worker Deployment's pod (worker.* values: resources, JVM, node
selection, tolerations, runtime class, lease settings; the shared volumes, database Secret and security context)
without ports and probes (a job pod serves no HTTP). The executor adds the container's args (worker --job <id>),
the GPU limit (worker.gpu, or what the job asks for), labels, restartPolicy Never and WHITTLE_WORKER_ID.
*/}}
{{- define "whittle.executor.podTemplate" -}}
{{- $gpu := .Values.worker.gpu }}
metadata:
  labels:
    {{- include "whittle.labels" . | nindent 4 }}
    app.kubernetes.io/component: worker-job
    {{- with .Values.worker.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.worker.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "whittle.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and $gpu.enabled .Values.worker.runtimeClassName }}
  runtimeClassName: {{ .Values.worker.runtimeClassName }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  # longer than releaseTimeoutSeconds: on SIGTERM (a cancelled job's Job is deleted) the worker stops at the next
  # layer boundary and records the cancellation, or gives the job back
  terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}
  initContainers:
    {{- include "whittle.initContainers" . | nindent 4 }}
  containers:
    - name: whittle
      image: {{ include "whittle.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      env:
        - name: JAVA_TOOL_OPTIONS
          value: {{ include "whittle.javaOptions" (dict "jvm" .Values.worker.jvm) | quote }}
        {{- include "whittle.commonEnv" . | nindent 8 }}
        # the pod name identifies the worker in the job's lease
        - name: WHITTLE_WORKER_ID
          value: "$(POD_NAME)"
        - name: WHITTLE_WORKER_LEASE
          value: "{{ .Values.worker.lease.durationSeconds }}s"
        - name: WHITTLE_WORKER_HEARTBEAT
          value: "{{ .Values.worker.lease.heartbeatSeconds }}s"
        - name: WHITTLE_WORKER_RELEASETIMEOUT
          value: "{{ .Values.worker.releaseTimeoutSeconds }}s"
        {{- with .Values.worker.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.worker.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "whittle.volumeMounts" . | nindent 8 }}
  volumes:
    {{- include "whittle.volumes" . | nindent 4 }}
  {{- $nodeSelector := deepCopy .Values.worker.nodeSelector }}
  {{- if and $gpu.enabled $gpu.product }}
  {{- $_ := set $nodeSelector "nvidia.com/gpu.product" $gpu.product }}
  {{- end }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $tolerations := .Values.worker.tolerations }}
  {{- if and $gpu.enabled $gpu.tolerateGpuTaint }}
  {{- $tolerations = append $tolerations (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule") }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.worker.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* A map as Spring YAML: keys in brackets, so that dots and slashes in label keys survive binding. */}}
{{- define "whittle.executor.springMap" -}}
{{- range $k, $v := . }}
{{ printf "[%s]" $k | quote }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/* The executor's Spring configuration (whittle.executor.*), imported by the API pods. */}}
{{- define "whittle.executor.springConfig" -}}
{{- $k := .Values.executor.kubernetes }}
{{- $gpu := .Values.worker.gpu }}
{{- $jobLabels := merge (dict) (fromYaml (include "whittle.labels" .)) $k.jobLabels }}
{{- $_ := unset $jobLabels "app.kubernetes.io/managed-by" }}
whittle:
  executor:
    mode: kubernetes
    kubernetes:
      pod-template-file: /etc/whittle/executor/pod-template.yaml
      container-name: whittle
      gpu-resource: {{ $gpu.resourceName | quote }}
      gpu-count: {{ if $gpu.enabled }}{{ $gpu.count }}{{ else }}0{{ end }}
      max-gpus: {{ $k.maxGpus }}
      allowed-gpu-resources:
        {{- range $k.allowedGpuResources }}
        - {{ . | quote }}
        {{- end }}
      backoff-limit: {{ $k.backoffLimit }}
      active-deadline: "{{ $k.activeDeadlineSeconds }}s"
      ttl-after-finished: "{{ $k.ttlSecondsAfterFinished }}s"
      {{- with $k.queueName }}
      queue-name: {{ . | quote }}
      {{- end }}
      {{- with $k.priorityClassName }}
      priority-class-name: {{ . | quote }}
      {{- end }}
      {{- with $k.workloadPriorityClass }}
      workload-priority-class: {{ . | quote }}
      {{- end }}
      poll-interval: "{{ $k.pollIntervalSeconds }}s"
      unschedulable-timeout: "{{ $k.unschedulableTimeoutMinutes }}m"
      start-timeout: "{{ $k.startTimeoutMinutes }}m"
      labels:
        {{- include "whittle.executor.springMap" $jobLabels | nindent 8 }}
      {{- with $k.jobAnnotations }}
      annotations:
        {{- include "whittle.executor.springMap" . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* Checks of the executor's values that the schema cannot express. */}}
{{- define "whittle.executor.validate" -}}
{{- if include "whittle.executor.kubernetes" . }}
{{- $k := .Values.executor.kubernetes }}
{{- if and (gt (int $k.ttlSecondsAfterFinished) 0) (lt (int $k.ttlSecondsAfterFinished) (mul 4 (int $k.pollIntervalSeconds))) }}
{{- fail (printf "executor.kubernetes.ttlSecondsAfterFinished (%v) must be 0 (never) or at least 4 x pollIntervalSeconds (%v): the executor must see every finished Job before it is deleted" $k.ttlSecondsAfterFinished (mul 4 (int $k.pollIntervalSeconds))) }}
{{- end }}
{{- if lt (int $k.maxGpus) (int (ternary .Values.worker.gpu.count 0 .Values.worker.gpu.enabled)) }}
{{- fail (printf "executor.kubernetes.maxGpus (%v) must be at least worker.gpu.count (%v)" $k.maxGpus .Values.worker.gpu.count) }}
{{- end }}
{{- end }}
{{- end }}
