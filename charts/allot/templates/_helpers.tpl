{{/*
Names, labels and images shared by every template. Component names are
<fullname>-<component>: scheduler, extender, controller, agent.
*/}}

{{- define "allot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name (63 characters minus room for "-controller"). */}}
{{- define "allot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "allot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "allot.scheduler.fullname" -}}{{ include "allot.fullname" . }}-scheduler{{- end }}
{{- define "allot.extender.fullname" -}}{{ include "allot.fullname" . }}-extender{{- end }}
{{- define "allot.controller.fullname" -}}{{ include "allot.fullname" . }}-controller{{- end }}
{{- define "allot.agent.fullname" -}}{{ include "allot.fullname" . }}-agent{{- end }}

{{/* The URL the scheduler calls the extender at (its Service, in the release namespace). */}}
{{- define "allot.extender.url" -}}
{{- if .Values.scheduler.extender.urlPrefix }}
{{- .Values.scheduler.extender.urlPrefix }}
{{- else -}}
{{ ternary "https" "http" .Values.extender.tls.enabled }}://{{ include "allot.extender.host" . }}:{{ .Values.extender.port }}
{{- end }}
{{- end }}

{{/* The extender Service's DNS name: the name its certificate is made for and checked against. */}}
{{- define "allot.extender.host" -}}
{{ include "allot.extender.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end }}

{{/* The Secret holding the verbs port's certificates (ca.crt, tls.*, client.*). */}}
{{- define "allot.extender.tlsSecret" -}}
{{ .Values.extender.tls.existingSecret | default (printf "%s-tls" (include "allot.extender.fullname" .)) }}
{{- end }}

{{/* Labels on every object. Call with (dict "ctx" $ "component" "extender"). */}}
{{- define "allot.labels" -}}
helm.sh/chart: {{ include "allot.chart" .ctx }}
{{ include "allot.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: allot
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select one component's pods (never change them on upgrade). */}}
{{- define "allot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "allot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* ServiceAccount name of a component. Call with (dict "ctx" $ "component" "agent"). */}}
{{- define "allot.serviceAccountName" -}}
{{- $given := index .ctx.Values.serviceAccount.name .component }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- include "allot.fullname" .ctx }}-{{ .component }}
{{- end }}
{{- end }}

{{/*
An image reference from {registry, repository, tag}: the image's own registry, else
imageRegistry, else none. Call with (dict "image" .Values.image "ctx" $ "defaultTag" "x").
*/}}
{{- define "allot.image" -}}
{{- $registry := .image.registry | default .ctx.Values.imageRegistry | trimSuffix "/" }}
{{- $tag := .image.tag | default .defaultTag | toString }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The cluster's Kubernetes version as an image tag: v1.31.4+k3s1 and v1.31.4-eks-1a2b -> v1.31.4. */}}
{{- define "allot.kubeVersionTag" -}}
{{- $v := .Capabilities.KubeVersion.Version | trimPrefix "v" }}
{{- printf "v%s" (regexFind "^[0-9]+[.][0-9]+[.][0-9]+" $v) }}
{{- end }}

{{- define "allot.allotImage" -}}
{{ include "allot.image" (dict "image" .Values.image "ctx" . "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/* Whether the controller runs as a Deployment of its own. */}}
{{- define "allot.controller.standalone" -}}
{{- if and .Values.controller.enabled (not .Values.controller.embedded) }}true{{ end }}
{{- end }}

{{/* Whether the extender process also runs the controller. */}}
{{- define "allot.controller.inExtender" -}}
{{- if and .Values.controller.enabled .Values.controller.embedded }}true{{ end }}
{{- end }}

{{/* Pod-level settings shared by the Deployments and the DaemonSet. */}}
{{- define "allot.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* POD_NAME / POD_NAMESPACE from the downward API. */}}
{{- define "allot.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
