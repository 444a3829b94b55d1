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
