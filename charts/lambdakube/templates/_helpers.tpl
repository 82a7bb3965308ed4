{{/*
Names. fullname is <release>-<chart> unless the release name already contains the chart
name; each component appends -operator / -router.
*/}}
{{- define "lambdakube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lambdakube.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lambdakube.operator.fullname" -}}
{{- printf "%s-operator" (include "lambdakube.fullname" .) }}
{{- end }}

{{- define "lambdakube.router.fullname" -}}
{{- printf "%s-router" (include "lambdakube.fullname" .) }}
{{- end }}

{{- define "lambdakube.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object. */}}
{{- define "lambdakube.labels" -}}
helm.sh/chart: {{ include "lambdakube.chart" . }}
app.kubernetes.io/name: {{ include "lambdakube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lambdakube
{{- end }}

{{/* Selector labels of one component: include with (list $ "operator"). */}}
{{- define "lambdakube.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "lambdakube.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "lambdakube.componentLabels" -}}
{{ include "lambdakube.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "lambdakube.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "lambdakube.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lambdakube.router.serviceAccountName" -}}
{{- if .Values.router.serviceAccount.create }}
{{- default (include "lambdakube.router.fullname" .) .Values.router.serviceAccount.name }}
{{- else }}
{{- required "router.serviceAccount.name is required when router.serviceAccount.create is false" .Values.router.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lambdakube.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The watched namespaces in namespaced mode, as a JSON list (fromJsonArray to use it):
watch.namespaces, or the release namespace when that list is empty.
*/}}
{{- define "lambdakube.watchNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- .Values.watch.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/*
Watch-scope arguments: include with (list $ "--namespace"). The operator takes kopf's
`--namespace` per namespace; the router already uses `--namespace` for the default
namespace of plain function names, so its watch scope is `--watch-namespace`.
*/}}
{{- define "lambdakube.watchArgs" -}}
{{- $root := index . 0 -}}
{{- $flag := index . 1 -}}
{{- $args := list -}}
{{- if $root.Values.watch.allNamespaces -}}
{{- $args = list "--all-namespaces" -}}
{{- else -}}
{{- range $ns := (include "lambdakube.watchNamespaces" $root | fromJsonArray) -}}
{{- $args = append (append $args $flag) $ns -}}
{{- end -}}
{{- end -}}
{{- toYaml $args -}}
{{- end }}

{{/*
Least-privilege rules. The same rule lists back the ClusterRole (all namespaces) or the
Role in each watched namespace, so the two modes can never drift apart. Every verb here
is one the component's ServiceAccount was seen to use in the e2e session on a real node
(tests/e2e/test_98_rbac_from_audit.py reads the apiserver's audit log and fails on a
request these rules refuse, and on a right nobody used); the few exceptions are listed
there with their reasons.

Operator: reconciles Functions (kopf patches them for its finalizer and progress
annotations, and watches pods for readiness), writes Function and ConcurrencyQuota
status, creates a namespace's ConcurrencyQuota when a Function asks for a reservation,
owns the provisioned and generic pods (a Function's cleanup deletes its pods by label,
with deletecollection), and posts core v1 Events. Versions and aliases: watched (kopf
indices), a version created when a Function with spec.publish changes (never changed or
deleted: its ownerReference lets the garbage collector take it with the Function), and
both kinds' status written (their provisioned environments). No ConfigMaps: inline code reaches an
environment in its runtime's POST /init, not as a volume. kopf runs without peering, so
there are no kopfpeerings rules.
*/}}
{{- define "lambdakube.operator.rules" -}}
- apiGroups: ["lambdakube.dev"]
  resources: ["functions"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functions/status"]
  verbs: ["patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functionversions"]
  verbs: ["list", "watch", "create"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functionaliases"]
  verbs: ["list", "watch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functionversions/status", "functionaliases/status"]
  verbs: ["patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["concurrencyquotas"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["concurrencyquotas/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "delete", "deletecollection", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Router: lists and watches Functions, their published versions and aliases, and quotas
(a quota's status, the operator's reservation decisions, comes with the object), and
EventSourceMappings (it runs their pollers, and patches their status), patches Function status (live pool
counters), creates/deletes the on-demand environment pods (and watches a new one
until its runtime is ready), patches pods (claims
of provisioned and generic pods, Init-error annotations), and posts Events. It reads a
Function by name only when its uid did not come with the watch. No ConfigMaps (inline
code goes to the runtime in POST /init).
*/}}
{{- define "lambdakube.router.rules" -}}
- apiGroups: ["lambdakube.dev"]
  resources: ["functions"]
  # patch: Lambda's PutFunctionConcurrency, spec.reservedConcurrency only (the
  # admission policy's function-writes rule)
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functions/status"]
  verbs: ["patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["functionversions", "functionaliases"]
  # the informers' list and watch (no read by name); patch: Lambda's
  # Put/DeleteProvisionedConcurrencyConfig, spec.provisionedConcurrency only (the
  # admission policy's provisioned-writes rule)
  verbs: ["list", "watch", "patch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["concurrencyquotas"]
  verbs: ["list", "watch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["eventsourcemappings"]
  # the informer's list and watch: the router runs the mappings' pollers
  verbs: ["list", "watch"]
- apiGroups: ["lambdakube.dev"]
  resources: ["eventsourcemappings/status"]
  # the pollers' state, lag and lastProcessingResult
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Router, when it checks its callers (router.auth.mode=tokenreview): a caller's bearer token
is checked with a TokenReview and each right with a SubjectAccessReview (the rights of
system:auth-delegator, as kube-rbac-proxy needs). Both are cluster-scoped, so these rules
are a ClusterRole in either RBAC mode; they let the router ask questions, not grant
anything.
*/}}
{{- define "lambdakube.router.authRules" -}}
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}

{{/* The router's URL as handlers reach it: AWS_ENDPOINT_URL_LAMBDA in environments. */}}
{{- define "lambdakube.functionEndpoint" -}}
{{- default (printf "http://%s.%s.svc:%v" (include "lambdakube.router.fullname" .) .Release.Namespace .Values.router.service.port) .Values.router.functionEndpoint }}
{{- end }}

{{/* Environment shared by both workloads. */}}
{{- define "lambdakube.commonEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: PYTHONUNBUFFERED
  value: "1"
{{- end }}
