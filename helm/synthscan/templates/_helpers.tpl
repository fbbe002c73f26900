{{/* Names and labels, release-scoped (the bitnami/KEDA chart conventions). */}}

{{/* Chart name, overridable. */}}
{{- define "synthscan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped full name: `<release>-<name>`, or `<release>` when it already contains the name. */}}
{{- define "synthscan.fullname" -}}
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

{{/* `name-version` for the helm.sh/chart label. */}}
{{- define "synthscan.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels for every object. */}}
{{- define "synthscan.labels" -}}
helm.sh/chart: {{ include "synthscan.chart" . }}
{{ include "synthscan.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: consumer
app.kubernetes.io/part-of: synthscan
{{- end }}

{{/* Immutable selector labels (Deployment selector, PDB, Service, spread constraints). */}}
{{- define "synthscan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "synthscan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "synthscan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "synthscan.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* `repository[:tag][@digest]` of an image dict; tag defaults to $default. */}}
{{- define "synthscan.imageRef" -}}
{{- $img := index . 0 }}{{ $default := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $default $img.tag | toString) }}
{{- end }}
{{- end }}
