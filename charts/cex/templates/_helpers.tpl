{{/*
Names, labels and shared fragments. Labels follow bitnami's common/_labels.tpl: every object
carries the standard app.kubernetes.io/* set, and selectors use a fixed subset of it
(name, instance, component) that never changes between releases, because a Deployment's or
StatefulSet's selector is immutable.
*/}}

{{/* The chart's name, or nameOverride; the value of app.kubernetes.io/name. */}}
{{- define "cex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object name: fullnameOverride, else "<release>" when the release name already
contains the chart name, else "<release>-<chart>". Object names append "-<component>", so the
prefix is cut to leave room within the 63 characters of a DNS label.
*/}}
{{- define "cex.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "cex.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", a valid object name. Call with (list $ "suffix"). */}}
{{- define "cex.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "cex.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of a cluster-scoped object (ClusterRole, ClusterRoleBinding). Releases are namespaced, so
two releases of the same name in two namespaces must not share one: the name carries the
release's namespace as well as its name. Call with (list $ "suffix").
*/}}
{{- define "cex.clusterScopedName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s-%s" (include "cex.fullname" $root) $root.Release.Namespace (index . 1) | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "cex.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "cex.labels.standard" -}}
helm.sh/chart: {{ include "cex.chart" . }}
{{ include "cex.labels.matchLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cex
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The fixed selector subset shared by every workload of the release. */}}
{{- define "cex.labels.matchLabels" -}}
app.kubernetes.io/name: {{ include "cex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component's objects. Call with (list $ "component"). */}}
{{- define "cex.labels.component" -}}
{{ include "cex.labels.standard" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Selector of one component's pods. Call with (list $ "component"). */}}
{{- define "cex.labels.componentSelector" -}}
{{ include "cex.labels.matchLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The cex image: repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "cex.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The image of the engines the operator creates: the cex image unless overridden. */}}
{{- define "cex.engineImage" -}}
{{- $engine := .Values.operator.engine.image -}}
{{- printf "%s:%s" (default .Values.image.repository $engine.repository) (default (default .Chart.AppVersion .Values.image.tag) $engine.tag) -}}
{{- end -}}

{{/* ServiceAccount of the shared services. */}}
{{- define "cex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cex.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount of the operator. */}}
{{- define "cex.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "cex.componentName" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches, as a list; empty: cluster-wide. */}}
{{- define "cex.operator.namespaces" -}}
{{- toJson (uniq .Values.operator.watchNamespaces) -}}
{{- end -}}

{{/* "true" when the operator watches every namespace. */}}
{{- define "cex.operator.clusterwide" -}}
{{- if not .Values.operator.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
Namespaces that hold Markets and therefore the engines' environment (ConfigMap and Secret):
the release's namespace, plus every watched namespace.
*/}}
{{- define "cex.marketNamespaces" -}}
{{- toJson (uniq (prepend .Values.operator.watchNamespaces .Release.Namespace)) -}}
{{- end -}}

{{/* ConfigMap holding the non-secret CEX_* environment (services, operator, engines). */}}
{{- define "cex.envConfigMapName" -}}
{{- include "cex.componentName" (list . "env") -}}
{{- end -}}

{{/* Secret holding CEX_POSTGRES_DSN: the user's existingSecret or the chart's. */}}
{{- define "cex.envSecretName" -}}
{{- default (include "cex.componentName" (list . "env")) .Values.infra.postgres.existingSecret -}}
{{- end -}}

{{/* "true" when the chart writes the DSN into a Secret of its own. */}}
{{- define "cex.createEnvSecret" -}}
{{- if not .Values.infra.postgres.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Addresses of the dev infrastructure (devInfra.enabled), reachable from any namespace. */}}
{{- define "cex.devInfra.host" -}}
{{- $root := index . 0 -}}
{{- printf "%s.%s.svc" (include "cex.componentName" (list $root (index . 1))) $root.Release.Namespace -}}
{{- end -}}

{{/*
Fails, naming every missing value at once, unless the infrastructure addresses are set or
devInfra provides them.
*/}}
{{- define "cex.requireInfra" -}}
{{- if not .Values.devInfra.enabled -}}
{{- $missing := list -}}
{{- if not .Values.infra.kafka.bootstrap -}}
{{- $missing = append $missing "infra.kafka.bootstrap (host:port[,host:port…] of your Kafka)" -}}
{{- end -}}
{{- if not .Values.infra.redis.url -}}
{{- $missing = append $missing "infra.redis.url (redis://host:port/db of your Redis)" -}}
{{- end -}}
{{- if not (or .Values.infra.postgres.dsn .Values.infra.postgres.existingSecret) -}}
{{- $missing = append $missing "infra.postgres.dsn, or infra.postgres.existingSecret (a Secret with the key CEX_POSTGRES_DSN)" -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "\n%s is required; or set devInfra.enabled=true for single-node dev Kafka, PostgreSQL and Redis" (join " is required;\n" $missing)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The infrastructure addresses: the values when set, else the dev components. */}}
{{- define "cex.kafkaBootstrap" -}}
{{- include "cex.requireInfra" . -}}
{{- default (printf "%s:9092" (include "cex.devInfra.host" (list . "kafka"))) .Values.infra.kafka.bootstrap -}}
{{- end -}}

{{- define "cex.redisUrl" -}}
{{- include "cex.requireInfra" . -}}
{{- default (printf "redis://%s:6379/0" (include "cex.devInfra.host" (list . "redis"))) .Values.infra.redis.url -}}
{{- end -}}

{{- define "cex.postgresDsn" -}}
{{- include "cex.requireInfra" . -}}
{{- if .Values.infra.postgres.dsn -}}
{{- .Values.infra.postgres.dsn -}}
{{- else -}}
{{- $pg := .Values.devInfra.postgres -}}
{{- printf "postgresql://%s:%s@%s:5432/%s" $pg.user (urlquery $pg.password) (include "cex.devInfra.host" (list . "postgres")) $pg.database -}}
{{- end -}}
{{- end -}}

{{/* The non-secret environment every cex process reads (cex.infra.settings.InfraSettings). */}}
{{- define "cex.infraEnv" -}}
CEX_ENVIRONMENT: {{ .Values.environment | quote }}
CEX_LOG_LEVEL: {{ .Values.logLevel | quote }}
CEX_KAFKA_BOOTSTRAP: {{ include "cex.kafkaBootstrap" . | quote }}
CEX_REDIS_URL: {{ include "cex.redisUrl" . | quote }}
CEX_REDIS_PREFIX: {{ .Values.infra.redis.prefix | quote }}
CEX_ORDERS_TOPIC: {{ .Values.infra.topics.orders | quote }}
CEX_EXECUTIONS_TOPIC: {{ .Values.infra.topics.executions | quote }}
{{- end -}}

{{/*
Checksum of the environment the pods read (ConfigMap, and the chart's Secret when it makes
one), so that a changed address or DSN restarts them on upgrade.
*/}}
{{- define "cex.envChecksum" -}}
{{- $dsn := "" -}}
{{- if include "cex.createEnvSecret" . -}}
{{- $dsn = include "cex.postgresDsn" . -}}
{{- else -}}
{{- $dsn = .Values.infra.postgres.existingSecret -}}
{{- end -}}
{{- printf "%s\n%s" (include "cex.infraEnv" .) $dsn | sha256sum -}}
{{- end -}}

{{/* "true" when ServiceMonitors and PrometheusRules render (monitoring.enabled auto|true|false). */}}
{{- define "cex.monitoring.enabled" -}}
{{- $mode := toString .Values.monitoring.enabled -}}
{{- if eq $mode "true" -}}true
{{- else if and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of every pod. */}}
{{- define "cex.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level scheduling of a workload: its own setting, else the chart-wide one. Call with (list $ $component). */}}
{{- define "cex.scheduling" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- with (default $root.Values.nodeSelector $c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations $c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity $c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.priorityClassName $c.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* A map of name: value as a container env list. */}}
{{- define "cex.envList" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The public API (components.api). Its secrets come from Secrets, never from values: the
user's existingSecrets, or with devInfra.enabled a generated Secret "<fullname>-api".
*/}}

{{/* "true" when the public API runs. */}}
{{- define "cex.api.enabled" -}}
{{- if (dig "api" "enabled" false .Values.components) -}}true{{- end -}}
{{- end -}}

{{/* "true" when the chart generates the API's Secret (dev infrastructure, a Secret not given). */}}
{{- define "cex.api.generateSecret" -}}
{{- if and (include "cex.api.enabled" .) .Values.devInfra.enabled (or (not .Values.api.secretsKeys.existingSecret) (not .Values.api.operatorToken.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* Name of the generated API Secret. */}}
{{- define "cex.api.generatedSecretName" -}}
{{- include "cex.componentName" (list . "api") -}}
{{- end -}}

{{/* Secret holding `keys` and `keyId` (CEX_SECRETS_KEYS, CEX_SECRETS_KEY_ID). */}}
{{- define "cex.api.secretsKeysSecret" -}}
{{- if .Values.api.secretsKeys.existingSecret -}}
{{- .Values.api.secretsKeys.existingSecret -}}
{{- else if .Values.devInfra.enabled -}}
{{- include "cex.api.generatedSecretName" . -}}
{{- else -}}
{{- fail "\napi.secretsKeys.existingSecret is required: a Secret with the keys `keys` (CEX_SECRETS_KEYS, JSON object key id -> base64 of 32 random bytes) and `keyId` (CEX_SECRETS_KEY_ID) that seal API key secrets at rest; or set devInfra.enabled=true (generated), or components.api.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/* Secret holding `token` (CEX_API_OPERATOR_TOKEN); empty: no operator role. */}}
{{- define "cex.api.operatorTokenSecret" -}}
{{- if .Values.api.operatorToken.existingSecret -}}
{{- .Values.api.operatorToken.existingSecret -}}
{{- else if .Values.devInfra.enabled -}}
{{- include "cex.api.generatedSecretName" . -}}
{{- end -}}
{{- end -}}

{{/* CEX_TRADING_URL: api.tradingUrl, else the trading Service of this release. */}}
{{- define "cex.api.tradingUrl" -}}
{{- if .Values.api.tradingUrl -}}
{{- .Values.api.tradingUrl -}}
{{- else if (dig "trading" "enabled" false .Values.components) -}}
{{- printf "http://%s:%v" (include "cex.componentName" (list . "trading")) .Values.components.trading.port -}}
{{- else -}}
{{- fail "\napi.tradingUrl is required when components.trading is disabled (the public API places orders through the trading API)" -}}
{{- end -}}
{{- end -}}

{{/* The public API's own environment (container env entries). */}}
{{- define "cex.api.env" -}}
{{- if and .Values.api.faucetEnabled (ne .Values.environment "dev") -}}
{{- fail "\napi.faucetEnabled hands out free funds: it is only allowed with environment=dev" -}}
{{- end -}}
- name: CEX_TRADING_URL
  value: {{ include "cex.api.tradingUrl" . | quote }}
- name: CEX_SECRETS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "cex.api.secretsKeysSecret" . }}
      key: keys
- name: CEX_SECRETS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "cex.api.secretsKeysSecret" . }}
      key: keyId
{{- with include "cex.api.operatorTokenSecret" . }}
- name: CEX_API_OPERATOR_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: token
{{- end }}
- name: CEX_API_FAUCET_ENABLED
  value: {{ .Values.api.faucetEnabled | toString | quote }}
- name: CEX_API_WEIGHT_PER_MINUTE
  value: {{ .Values.api.rateLimits.weightPerMinute | int64 | toString | quote }}
- name: CEX_API_ORDERS_PER_10S
  value: {{ .Values.api.rateLimits.ordersPer10s | int64 | toString | quote }}
- name: CEX_API_ORDERS_PER_DAY
  value: {{ .Values.api.rateLimits.ordersPerDay | int64 | toString | quote }}
{{- with .Values.api.forwardedAllowIps }}
- name: FORWARDED_ALLOW_IPS
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Extra env entries of one component (list $ "name"): the public API's settings. */}}
{{- define "cex.componentEnv" -}}
{{- $root := index . 0 -}}
{{- if eq (index . 1) "api" -}}
{{- include "cex.api.env" $root -}}
{{- end -}}
{{- end -}}

{{/*
The id of a component (a key of .Values.components): its kebab-case, which names its objects
and is its app.kubernetes.io/component label and its job (candlePersist → candle-persist).
*/}}
{{- define "cex.componentId" -}}
{{- kebabcase . -}}
{{- end -}}

{{/* Fails when two keys of .Values.components have the same id (candlePersist, candle-persist). */}}
{{- define "cex.componentIdsUnique" -}}
{{- $seen := dict -}}
{{- range $name, $c := .Values.components -}}
{{- $id := include "cex.componentId" $name -}}
{{- if hasKey $seen $id -}}
{{- fail (printf "\ncomponents.%s and components.%s would both be named %q: rename one" (get $seen $id) $name $id) -}}
{{- end -}}
{{- $_ := set $seen $id $name -}}
{{- end -}}
{{- end -}}

{{/*
The web UI (web.*): where its own rewrites send the API's and the gateway's paths. Its value
if set, else this release's Service (an empty string when that component is disabled: the
Ingress routes those paths anyway).
*/}}
{{- define "cex.web.apiUrl" -}}
{{- if .Values.web.apiUrl -}}
{{- .Values.web.apiUrl -}}
{{- else if (include "cex.api.enabled" .) -}}
{{- printf "http://%s:%v" (include "cex.componentName" (list . "api")) .Values.components.api.port -}}
{{- end -}}
{{- end -}}

{{- define "cex.web.gatewayUrl" -}}
{{- if .Values.web.gatewayUrl -}}
{{- .Values.web.gatewayUrl -}}
{{- else if (dig "gateway" "enabled" false .Values.components) -}}
{{- printf "http://%s:%v" (include "cex.componentName" (list . "gateway")) .Values.components.gateway.port -}}
{{- end -}}
{{- end -}}
