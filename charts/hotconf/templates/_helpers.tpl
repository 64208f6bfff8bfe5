{{/*
hotconf.name: the chart's short name (or .Values.nameOverride), for the app.kubernetes.io/name
label. Truncated to 63 characters, the limit of a label value and of a DNS label.
*/}}
{{- define "hotconf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
hotconf.fullname: the base name of every object of the release. "<release>-hotconf", or just
"<release>" when the release name already contains the chart name, or .Values.fullnameOverride.
Truncated to 63 characters because some objects (Services) must be valid DNS labels.
*/}}
{{- define "hotconf.fullname" -}}
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

{{/*
hotconf.chart: "<chart>-<version>" for the helm.sh/chart label (never in a selector).
*/}}
{{- define "hotconf.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
hotconf.selectorLabels: the labels that select the operator's pods (Deployment selector,
Service selector). Only the name and the instance: these must never change across upgrades,
since a Deployment's selector is immutable, so the chart and app versions stay out.
*/}}
{{- define "hotconf.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hotconf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
hotconf.labels: the common labels of every object of the release: the selector labels plus
the chart, the app version and the managing tool.
*/}}
{{- define "hotconf.labels" -}}
helm.sh/chart: {{ include "hotconf.chart" . }}
{{ include "hotconf.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hotconf
{{- end }}

{{/*
hotconf.highAvailability: "true" when the operator runs several replicas (replicaCount > 1),
empty otherwise; everything about kopf peering (the peering object, its rights, the
PodDisruptionBudget, the spreading, HOTCONF_STANDALONE=false) hangs on it, so one replica
renders exactly the standalone setup.
*/}}
{{- define "hotconf.highAvailability" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
hotconf.spreadReplicas: the podAntiAffinity of several replicas: preferred (never blocks
scheduling on a cluster with fewer nodes than replicas), one replica per node (hostname), so one
node's loss takes at most one operator. Matches the Deployment's own selector labels.
*/}}
{{- define "hotconf.spreadReplicas" -}}
preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "hotconf.selectorLabels" . | nindent 10 }}
          app.kubernetes.io/component: operator
{{- end }}

{{/*
hotconf.serviceAccountName: the operator's ServiceAccount, created by the chart or given.
*/}}
{{- define "hotconf.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hotconf.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
hotconf.image: the operator image reference: "repository@digest" when image.digest is set (the
tag is then ignored: a digest names the bytes), else "repository:tag", the tag defaulting to the
chart's appVersion.
*/}}
{{- define "hotconf.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
hotconf.sidecarImage: the image the webhook injects as the sidecar; defaults to the operator's
image (one image holds both programs), digest included. A sidecar.image.repository or tag of its
own names another image, so image.digest, which is the operator image's, no longer applies.
*/}}
{{- define "hotconf.sidecarImage" -}}
{{- if or .Values.sidecar.image.repository .Values.sidecar.image.tag }}
{{- $repository := .Values.sidecar.image.repository | default .Values.image.repository }}
{{- $tag := .Values.sidecar.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- else }}
{{- include "hotconf.image" . }}
{{- end }}
{{- end }}

{{/*
hotconf.signingKeySecretName: the Secret holding the operator's Ed25519 signing key (key
"private.pem", and "next.pem" during a key rotation): the user's own, or the one the operator
creates when it is missing (never rendered: a template would make a new key on every render).
*/}}
{{- define "hotconf.signingKeySecretName" -}}
{{- .Values.signingKey.existingSecret | default (printf "%s-signing-key" (include "hotconf.fullname" .)) }}
{{- end }}

{{/*
hotconf.webhookSecretName: the kubernetes.io/tls Secret with the webhook's serving certificate
(tls.crt, tls.key, ca.crt), written by the operator or by cert-manager, never rendered.
*/}}
{{- define "hotconf.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "hotconf.fullname" .) }}
{{- end }}

{{/*
hotconf.serviceHost: the in-cluster DNS name of the operator's Service, which the API server
calls for admission and which the serving certificate is issued for.
*/}}
{{- define "hotconf.serviceHost" -}}
{{- printf "%s.%s.svc" (include "hotconf.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
hotconf.webhookHosts: what the webhook's serving certificate is issued for, as a JSON list: the
Service's DNS names and, with webhook.url, the URL's host (an IP address becomes an IP SAN).
Used by the cert-manager Certificate and passed to the operator (HOTCONF_WEBHOOK_HOSTS).
*/}}
{{- define "hotconf.webhookHosts" -}}
{{- $fullname := include "hotconf.fullname" . }}
{{- $host := include "hotconf.serviceHost" . }}
{{- $hosts := list $fullname (printf "%s.%s" $fullname .Release.Namespace) $host (printf "%s.cluster.local" $host) }}
{{- with .Values.webhook.url }}
{{- $urlHost := (urlParse .).hostname }}
{{- if not $urlHost }}
{{- fail (printf "webhook.url %q has no host: give https://HOST:PORT/PATH" .) }}
{{- end }}
{{- if not (has $urlHost $hosts) }}
{{- $hosts = append $hosts $urlHost }}
{{- end }}
{{- end }}
{{- toJson $hosts }}
{{- end }}

{{/*
hotconf.operatorManagesWebhookCertificate: "true" when the operator makes the webhook's
certificate and sets the caBundle (the default), empty with cert-manager.
*/}}
{{- define "hotconf.operatorManagesWebhookCertificate" -}}
{{- if not .Values.webhook.certManager.enabled }}true{{ end }}
{{- end }}

{{/*
hotconf.rbac.ownSecretRules: in the release namespace only (a Role), what the operator does with
its own two Secrets, which no template renders (they would change on every render):
- secrets get on the signing key and the webhook certificate Secret only (resourceNames);
- secrets create: to make them when missing. Kubernetes cannot restrict create by name (the
  name is in the body, not the URL), so this is create of any Secret in this one namespace;
- secrets update on the webhook certificate Secret only: reissued when the hosts change or it
  nears its end (operator-managed certificate only; cert-manager writes it otherwise).
No list, watch, patch or delete; nothing in any other namespace.
*/}}
{{- define "hotconf.rbac.ownSecretRules" -}}
{{- $managed := include "hotconf.operatorManagesWebhookCertificate" . }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames:
    - {{ include "hotconf.signingKeySecretName" . | quote }}
    {{- if $managed }}
    - {{ include "hotconf.webhookSecretName" . | quote }}
    {{- end }}
  verbs: ["get"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- if $managed }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ include "hotconf.webhookSecretName" . | quote }}]
  verbs: ["update"]
{{- end }}
{{- end }}

{{/*
hotconf.rbac.webhookConfigurationRules: with the operator-managed certificate and the webhook
enabled, get and patch on the release's one MutatingWebhookConfiguration (resourceNames), to
keep its caBundle at the operator's CA. Cluster-scoped, so a ClusterRole even in namespaced mode.
*/}}
{{- define "hotconf.rbac.webhookConfigurationRules" -}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["mutatingwebhookconfigurations"]
  resourceNames: [{{ include "hotconf.fullname" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/*
hotconf.rbac.namespacedRules: what the operator does inside a watched namespace, the one list
used by both the ClusterRole (cluster-wide mode) and each Role (watchNamespaces mode):
- configmaps get/list/watch: follow labelled ConfigMaps; patch: write hotconf.dev/status and
  kopf's own bookkeeping annotations. No create/update/delete: it never writes config.
- pods get/list/watch: find the pods that use a ConfigMap and their IPs. No write rights at all.
- events create/patch: report pushes and rejections on the ConfigMap, and SidecarNotInjected on
  pods admitted without the sidecar (core v1 Events, as kopf posts them).
- controllerrevisions list/create/patch/delete: each ConfigMap's revision history (one
  ControllerRevision per validated revision, owned by the ConfigMap): list its records (by label,
  metadata only, or one by name for the last good data), create one per new revision, patch its
  outcome and number, delete the oldest beyond the limit. No get, watch or update.
Application pods get no rights from this chart: their sidecar talks to nobody but the operator.
*/}}
{{- define "hotconf.rbac.namespacedRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["list", "create", "patch", "delete"]
{{- end }}

{{/*
hotconf.rbac.scanningRules: in cluster-wide mode only, the cluster-scoped reads kopf makes when
it starts and while it runs: customresourcedefinitions list/watch, to notice resource kinds
appearing (kopf's scanning). Given namespaces, the operator turns scanning off and needs none.
Neither mode reads namespaces: cluster-wide kopf does not follow them, namespaced it is told them.
*/}}
{{- define "hotconf.rbac.scanningRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}

{{/*
hotconf.rbac.peeringRules: with several replicas only, what kopf does with the peering object
the replicas share (kopf 1.45: it lists and watches the peering resource to see its peers, and
merge-patches its own record into the object's status; it never reads a single object, creates
or deletes one). Called with a dict: "resource" (clusterkopfpeerings cluster-wide, kopfpeerings
in each watched namespace) and "name" (peering.name).
- list/watch on the resource: kopf watches it without a name (resourceNames cannot apply).
- patch on the one peering object only (resourceNames): other kopf operators' peerings are safe.
No status subresource: the CRDs in crds/ have none, so patch on the object is enough.
*/}}
{{- define "hotconf.rbac.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: [{{ .name | quote }}]
  verbs: ["patch"]
{{- end }}
