{{/* Settings derived from values, and render-time validation. */}}

{{/* Directory the checkpoint is read from. */}}
{{- define "synthscan.modelDir" -}}
{{- if eq .Values.model.source "image" }}{{ .Values.model.imageDir }}{{ else }}/models{{ end }}
{{- end }}

{{/* Absolute checkpoint path (`SYNTHSCAN_MODEL__CHECKPOINT`). */}}
{{- define "synthscan.checkpointPath" -}}
{{- if and (eq .Values.model.source "image") (isAbs .Values.model.file) }}{{ .Values.model.file }}
{{- else }}{{ printf "%s/%s" (include "synthscan.modelDir" .) .Values.model.file | clean }}{{ end }}
{{- end }}

{{/* Torch device: explicit, else cuda with a GPU and cpu without. */}}
{{- define "synthscan.device" -}}
{{- .Values.model.device | default (ternary "cuda" "cpu" .Values.gpu.enabled) }}
{{- end }}

{{/* Worst case batch + flush + commit + close, in seconds. */}}
{{- define "synthscan.shutdownParts" -}}
{{- $s := .Values.shutdown }}
{{- add $s.batchSeconds $s.flushSeconds $s.commitSeconds $s.closeSeconds }}
{{- end }}

{{/* The consumer's own shutdown bound (`SYNTHSCAN_SHUTDOWN__GRACE_S`). */}}
{{- define "synthscan.shutdownGrace" -}}
{{- if kindIs "invalid" .Values.shutdown.graceSeconds }}{{ include "synthscan.shutdownParts" . }}
{{- else }}{{ int64 .Values.shutdown.graceSeconds }}{{ end }}
{{- end }}

{{/* terminationGracePeriodSeconds: explicit, or the consumer's bound plus margin. */}}
{{- define "synthscan.terminationGrace" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (include "synthscan.shutdownGrace" . | atoi) .Values.shutdown.marginSeconds }}
{{- else }}{{ int64 .Values.terminationGracePeriodSeconds }}{{ end }}
{{- end }}

{{/* Autoscaling ceiling: explicit, else the partition count. */}}
{{- define "synthscan.maxReplicas" -}}
{{- $explicit := ternary .Values.keda.maxReplicaCount .Values.hpa.maxReplicas .Values.keda.enabled }}
{{- if kindIs "invalid" $explicit }}{{ int64 .Values.kafka.partitions }}{{ else }}{{ int64 $explicit }}{{ end }}
{{- end }}

{{/* Autoscaling floor. */}}
{{- define "synthscan.minReplicas" -}}
{{- int64 (ternary .Values.keda.minReplicaCount .Values.hpa.minReplicas .Values.keda.enabled) }}
{{- end }}

{{/* True when the security protocol uses SASL / TLS. */}}
{{- define "synthscan.sasl" -}}{{ hasPrefix "SASL_" .Values.kafka.securityProtocol }}{{- end }}
{{- define "synthscan.tls" -}}{{ hasSuffix "SSL" .Values.kafka.securityProtocol }}{{- end }}

{{/* librdkafka passthrough (JSON): derived security settings, overridden by kafka.librdkafka. */}}
{{- define "synthscan.librdkafka" -}}
{{- $k := .Values.kafka }}
{{- $c := dict "security.protocol" $k.securityProtocol }}
{{- if eq (include "synthscan.sasl" .) "true" }}{{ $_ := set $c "sasl.mechanism" $k.sasl.mechanism }}{{ end }}
{{- if $k.tls.existingSecret }}
{{- if $k.tls.caKey }}{{ $_ := set $c "ssl.ca.location" (printf "%s/%s" $k.tls.mountPath $k.tls.caKey) }}{{ end }}
{{- if $k.tls.certKey }}{{ $_ := set $c "ssl.certificate.location" (printf "%s/%s" $k.tls.mountPath $k.tls.certKey) }}{{ end }}
{{- if $k.tls.keyKey }}{{ $_ := set $c "ssl.key.location" (printf "%s/%s" $k.tls.mountPath $k.tls.keyKey) }}{{ end }}
{{- end }}
{{- merge (deepCopy $k.librdkafka) $c | toJson }}
{{- end }}

{{/* Fail the render on configurations that cannot work. */}}
{{- define "synthscan.validate" -}}
{{- $v := .Values }}
{{- if and $v.keda.enabled $v.hpa.enabled }}
{{- fail "keda.enabled and hpa.enabled are exclusive: pick one autoscaler" }}
{{- end }}
{{- if and (eq (include "synthscan.sasl" .) "true") (not $v.kafka.sasl.existingSecret) }}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.existingSecret (username/password Secret)" $v.kafka.securityProtocol) }}
{{- end }}
{{- if and $v.kafka.tls.existingSecret (ne (include "synthscan.tls" .) "true") }}
{{- fail "kafka.tls.existingSecret is set but kafka.securityProtocol is not SSL or SASL_SSL" }}
{{- end }}
{{- range $key, $_ := $v.kafka.librdkafka }}
{{- if regexMatch "(?i)(password|secret|token)" $key }}
{{- fail (printf "kafka.librdkafka.%s is a secret and would land in a ConfigMap: use kafka.sasl.existingSecret, kafka.tls.existingSecret or extraEnv with valueFrom.secretKeyRef" $key) }}
{{- end }}
{{- end }}
{{- range $v.extraEnv }}
{{- if and (regexMatch "(?i)(password|secret|token)" .name) (hasKey . "value") }}
{{- fail (printf "extraEnv %s holds a secret as a literal value: use valueFrom.secretKeyRef" .name) }}
{{- end }}
{{- end }}
{{- if ne (empty $v.kafka.tls.certKey) (empty $v.kafka.tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS needs both)" }}
{{- end }}
{{- if and (eq $v.model.source "pvc") (not $v.model.pvc.claimName) }}
{{- fail "model.source=pvc needs model.pvc.claimName" }}
{{- end }}
{{- if and (eq $v.model.source "initImage") (not $v.model.initImage.repository) }}
{{- fail "model.source=initImage needs model.initImage.repository" }}
{{- end }}
{{- $grace := include "synthscan.shutdownGrace" . | atoi }}
{{- $term := include "synthscan.terminationGrace" . | atoi }}
{{- if le $term $grace }}
{{- fail (printf "terminationGracePeriodSeconds=%d must exceed the consumer's shutdown bound %ds (batch + flush + commit + close); unset it to compute it" $term $grace) }}
{{- end }}
{{- if or $v.keda.enabled $v.hpa.enabled }}
{{- if gt (include "synthscan.minReplicas" . | atoi) (include "synthscan.maxReplicas" . | atoi) }}
{{- fail "autoscaling: min replicas exceed max replicas" }}
{{- end }}
{{- end }}
{{- end }}
