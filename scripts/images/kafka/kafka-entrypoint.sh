#!/bin/bash
# Writes /etc/kafka/server.properties from the environment (KAFKA_FOO_BAR=v → foo.bar=v;
# KAFKA_HEAP_OPTS and KAFKA_OPTS are the JVM's), formats the log directories with CLUSTER_ID
# unless already formatted, then runs the broker (and controller) in the foreground.
set -euo pipefail
: "${CLUSTER_ID:?set CLUSTER_ID (22 characters of base64url)}"
conf=/etc/kafka/server.properties
{
  echo "# Written by kafka-entrypoint.sh from the KAFKA_* environment."
  while IFS= read -r var; do
    case "${var}" in KAFKA_HEAP_OPTS | KAFKA_OPTS) continue ;; esac
    key="$(tr 'A-Z_' 'a-z.' <<<"${var#KAFKA_}")"
    printf '%s=%s\n' "${key}" "${!var}"
  done < <(compgen -e | grep '^KAFKA_')
} >"${conf}"

read -ra heap <<<"${KAFKA_HEAP_OPTS:-}"
read -ra opts <<<"${KAFKA_OPTS:-}"
# Kafka's own JVM settings (kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS): G1 at its default
# 200 ms pause target made young collections of 40 ms, in the tail of every transaction.
java=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true "${opts[@]}"
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties -cp '/opt/kafka/libs/*')
"${java[@]}" kafka.tools.StorageTool format -t "${CLUSTER_ID}" -c "${conf}" --ignore-formatted
exec "${java[@]}" kafka.Kafka "${conf}"
