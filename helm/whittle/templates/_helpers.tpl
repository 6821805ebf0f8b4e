{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "whittle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "whittle.fullname" -}}
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

{{- define "whittle.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "whittle.labels" -}}
helm.sh/chart: {{ include "whittle.chart" . }}
{{ include "whittle.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: whittle
{{- end }}

{{- define "whittle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "whittle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "whittle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "whittle.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "whittle.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret with the JDBC URL and credentials. */}}
{{- define "whittle.databaseSecret" -}}
{{- if .Values.database.create }}
{{- printf "%s-db" (include "whittle.fullname" .) }}
{{- else }}
{{- required "database.existingSecret (or database.create with database.url) is required: API and worker pods share the job queue in PostgreSQL" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{/* The Secret with the API key hashes. */}}
{{- define "whittle.apiKeysSecret" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else }}
{{- printf "%s-api-keys" (include "whittle.fullname" .) }}
{{- end }}
{{- end }}

{{- define "whittle.claimName" -}}
{{- default (printf "%s-data" (include "whittle.fullname" .)) .Values.storage.persistence.existingClaim }}
{{- end }}

{{- define "whittle.modelRoots" -}}
{{- if .Values.storage.modelRoots }}
{{- join "," .Values.storage.modelRoots }}
{{- else }}
{{- printf "%s/models" (trimSuffix "/" .Values.storage.mountPath) }}
{{- end }}
{{- end }}

{{- define "whittle.outputRoot" -}}
{{- default (printf "%s/outputs" (trimSuffix "/" .Values.storage.mountPath)) .Values.storage.outputRoot }}
{{- end }}

{{/* Checks the values cannot express in the schema. */}}
{{- define "whittle.validate" -}}
{{- if and .Values.database.create (not .Values.database.url) }}
{{- fail "database.create needs database.url (jdbc:postgresql://host:5432/db)" }}
{{- end }}
{{- if and .Values.database.create (not (hasPrefix "jdbc:postgresql:" .Values.database.url)) }}
{{- fail (printf "database.url must be a PostgreSQL JDBC URL (jdbc:postgresql://host:5432/db), got %q" .Values.database.url) }}
{{- end }}
{{- if and .Values.apiKeys.enabled (not .Values.apiKeys.existingSecret) (not .Values.apiKeys.hashes) }}
{{- fail "apiKeys.enabled needs apiKeys.existingSecret or apiKeys.hashes" }}
{{- end }}
{{- $w := .Values.worker }}
{{- if ge (int $w.lease.heartbeatSeconds) (int $w.lease.durationSeconds) }}
{{- fail (printf "worker.lease.heartbeatSeconds (%v) must be shorter than worker.lease.durationSeconds (%v)" $w.lease.heartbeatSeconds $w.lease.durationSeconds) }}
{{- end }}
{{- $stop := add $w.shutdownGraceSeconds $w.releaseTimeoutSeconds 10 }}
{{- if lt (int $w.terminationGracePeriodSeconds) (int $stop) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be at least shutdownGraceSeconds + releaseTimeoutSeconds + 10 (%v): a worker needs that long to finish or give back its jobs" $w.terminationGracePeriodSeconds $stop) }}
{{- end }}
{{- if le (int $w.terminationGracePeriodSeconds) (int $w.lease.heartbeatSeconds) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be longer than one lease renewal (worker.lease.heartbeatSeconds %v)" $w.terminationGracePeriodSeconds $w.lease.heartbeatSeconds) }}
{{- end }}
{{- end }}

{{/* JVM options for a role's container; $jvm is api.jvm or worker.jvm. */}}
{{- define "whittle.javaOptions" -}}
{{- $opts := list (printf "-XX:MaxRAMPercentage=%v" .jvm.maxRamPercentage) "-Djava.io.tmpdir=/tmp" "-Dai.djl.offline=true" "-Dorg.bytedeco.javacpp.cachedir=/tmp/javacpp" }}
{{- if .jvm.extraOptions }}
{{- $opts = append $opts .jvm.extraOptions }}
{{- end }}
{{- join " " $opts }}
{{- end }}

{{/* Environment shared by API and worker containers. */}}
{{- define "whittle.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: DJL_CACHE_DIR
  value: /tmp/djl
- name: WHITTLE_CUDA_CACHE_DIR
  value: /tmp/whittle-cubin-cache
- name: WHITTLE_STORAGE_DATADIR
  value: {{ .Values.storage.mountPath | quote }}
- name: WHITTLE_STORAGE_MODELROOTS
  value: {{ include "whittle.modelRoots" . | quote }}
- name: WHITTLE_STORAGE_OUTPUTROOT
  value: {{ include "whittle.outputRoot" . | quote }}
- name: SPRING_DATASOURCE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "whittle.databaseSecret" . }}
      key: {{ .Values.database.urlKey }}
- name: SPRING_DATASOURCE_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "whittle.databaseSecret" . }}
      key: {{ .Values.database.usernameKey }}
- name: SPRING_DATASOURCE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "whittle.databaseSecret" . }}
      key: {{ .Values.database.passwordKey }}
{{- if .Values.apiKeys.enabled }}
- name: WHITTLE_SECURITY_APIKEYHASHESFILE
  value: /etc/whittle/api-keys/{{ .Values.apiKeys.hashesKey }}
- name: WHITTLE_SECURITY_PROTECTMETRICS
  value: {{ .Values.apiKeys.protectMetrics | quote }}
{{- end }}
{{- end }}

{{/* Volumes shared by API and worker pods. */}}
{{- define "whittle.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
- name: data
{{- if .Values.storage.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "whittle.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- if .Values.apiKeys.enabled }}
- name: api-keys
  secret:
    secretName: {{ include "whittle.apiKeysSecret" . }}
    items:
      - key: {{ .Values.apiKeys.hashesKey }}
        path: {{ .Values.apiKeys.hashesKey }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "whittle.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.storage.mountPath }}
{{- if .Values.apiKeys.enabled }}
- name: api-keys
  mountPath: /etc/whittle/api-keys
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Creates the model and output roots on a fresh volume (the service requires its model roots to exist). */}}
{{- define "whittle.initContainers" -}}
- name: storage-dirs
  image: {{ include "whittle.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - mkdir
    - -p
    {{- range (splitList "," (include "whittle.modelRoots" .)) }}
    - {{ . | quote }}
    {{- end }}
    - {{ include "whittle.outputRoot" . | quote }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: {{ .Values.storage.mountPath }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      cpu: 100m
      memory: 64Mi
{{- end }}

{{/* Startup, liveness and readiness probes on the actuator health groups. */}}
{{- define "whittle.probes" -}}
startupProbe:
  httpGet:
    path: /actuator/health/liveness
    port: http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /actuator/health/liveness
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /actuator/health/readiness
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}
