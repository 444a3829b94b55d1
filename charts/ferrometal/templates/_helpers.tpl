{{/* Chart name. */}}
{{- define "ferrometal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "ferrometal.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "ferrometal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ferrometal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels selecting the operator's Pods. */}}
{{- define "ferrometal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrometal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "ferrometal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferrometal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespace of ServerBootConfigurations and ignition Secrets. */}}
{{- define "ferrometal.bootNamespace" -}}
{{- default .Release.Namespace .Values.bootConfiguration.namespace }}
{{- end }}

{{/* The operator image. */}}
{{- define "ferrometal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The plugin directory inside the container. */}}
{{- define "ferrometal.pluginDir" -}}
{{- if eq .Values.plugins.source "image" }}/usr/lib/ferrometal/plugins{{ else }}/etc/ferrometal/plugins{{ end }}
{{- end }}

{{/* Whether a MAC database is configured. */}}
{{- define "ferrometal.hasMacDatabase" -}}
{{- if or .Values.macDatabase.existingConfigMap .Values.macDatabase.content }}true{{ end }}
{{- end }}

{{/* The DHCP configuration with the lease file defaulted onto the lease volume. */}}
{{- define "ferrometal.dhcpConfig" -}}
{{- $config := deepCopy .Values.dhcp.config }}
{{- if not (hasKey $config "leaseFile") }}
{{- $_ := set $config "leaseFile" "/var/lib/ferrometal/dhcp/leases.json" }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
A binary quantity (Ki, Mi, Gi, Ti) in MiB, rounded down; the cache keeps a little under its
volume's size limit (15/16), so the kubelet never evicts the Pod for it.
*/}}
{{- define "ferrometal.mebibytes" -}}
{{- $q := toString . -}}
{{- $n := regexFind "^[0-9]+" $q | int64 -}}
{{- $unit := trimPrefix (toString $n) $q -}}
{{- $mib := 0 -}}
{{- if eq $unit "Ki" }}{{ $mib = div $n 1024 }}
{{- else if eq $unit "Mi" }}{{ $mib = $n }}
{{- else if eq $unit "Gi" }}{{ $mib = mul $n 1024 }}
{{- else if eq $unit "Ti" }}{{ $mib = mul $n 1048576 }}
{{- end -}}
{{- div (mul $mib 15) 16 -}}
{{- end -}}

{{/*
The plugin configuration: plugins.config, with the paths of what the chart mounts for it
(the registry login Secret, the artifact cache volume).
*/}}
{{- define "ferrometal.pluginConfig" -}}
{{- $config := deepCopy .Values.plugins.config -}}
{{- if .Values.plugins.registryAuthSecret -}}
{{- $registry := deepCopy (default (dict) $config.registry) -}}
{{- $_ := set $registry "authFile" "/etc/ferrometal/registry/.dockerconfigjson" -}}
{{- $_ := set $config "registry" $registry -}}
{{- end -}}
{{- if .Values.plugins.artifactCache -}}
{{- $_ := set $config "artifactDir" "/var/cache/ferrometal-artifacts" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
